"""The figures of `blockattn eval all`: one PNG beside each table's JSON (`reportio.write_report`)."""

from __future__ import annotations

from pathlib import Path

from blockattn.reportio import save_figure


def plot_segmentation_kl(result: dict, path: Path) -> None:
    """T3: mean per-token KL(full ‖ block) per segmentation method, one bar per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(result["methods"])
    variants = list(next(iter(result["methods"].values())))
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / max(1, len(variants))
    for j, v in enumerate(variants):
        ax.bar([i + j * width for i in range(len(methods))], [result["methods"][m][v]["kl"] for m in methods],
               width, label=v)
    ax.set_xticks([i + width * (len(variants) - 1) / 2 for i in range(len(methods))], methods)
    ax.set_ylabel("KL(full ‖ block), nats/token")
    ax.set_title(f"{result['model']}: {result['documents']} SemanticSeg {result['split']} texts, same block count")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    save_figure(fig, path)


def plot_sensitivity(result: dict, path: Path) -> None:
    """F1: per-token KL along each example's prompt + answer; supporting paragraphs shaded, answer marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    examples = result["examples"]
    fig, axes = plt.subplots(len(examples), 1, figsize=(10, 2.4 * len(examples)), squeeze=False)
    for ax, ex in zip(axes[:, 0], examples):
        edges = [0]
        for n in ex["block_tokens"]:
            edges.append(edges[-1] + n)
        for b in ex["supporting_blocks"]:
            ax.axvspan(edges[b], edges[b + 1], color="gold", alpha=0.25, lw=0)
        for e in edges[1:-1]:
            ax.axvline(e, color="grey", lw=0.4)
        ax.axvspan(edges[-1] - ex["answer_tokens"] - 1, edges[-1], color="tab:green", alpha=0.25, lw=0)
        for name, v in ex["variants"].items():
            ax.plot(v["kl_per_token"], lw=0.7, label=f"{name} (answer {v['kl_answer']:.2f})")
        ax.set_yscale("symlog", linthresh=0.1)
        ax.set_title(f"{ex['question'][:90]} → {ex['answer']}", fontsize=8)
        ax.set_ylabel("KL")
        ax.legend(fontsize=7, loc="upper left")
    axes[-1, 0].set_xlabel("token (yellow: supporting paragraphs, green: answer predictions)")
    fig.suptitle(f"{result['model']}: per-token KL(full ‖ block) on HotpotQA examples", fontsize=10)
    save_figure(fig, path)

"""The picture of the ranking: supernet score against stand-alone accuracy, one colour per search config."""
from typing import Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

from lib.fileio import atomic_write  # noqa: E402

PANELS = (('shared', 'supernet val prec@1, shared BN statistics'),
          ('recalibrated', 'supernet val prec@1, BN re-estimated per path'))


def plot_rankings(reports: Sequence[dict], out: str, title: str = '') -> None:
    """One panel per BN treatment; each run's paths as points (x: stand-alone val prec@1, y: supernet val
    prec@1), coloured by the run's label."""
    labels = list(dict.fromkeys(r['label'] for r in reports))
    colours = {label: plt.get_cmap('tab10')(i % 10) for i, label in enumerate(labels)}
    panels = [p for p in PANELS if any(p[0] in row for r in reports for row in r['scores'])]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.5), squeeze=False)
    for ax, (key, name) in zip(axes[0], panels):
        seen = set()
        for report in reports:
            rows = [row for row in report['scores'] if key in row]
            ax.scatter([row['standalone_prec1'] for row in rows], [row[key]['prec1'] for row in rows], s=16,
                       alpha=0.7, color=colours[report['label']],
                       label=None if report['label'] in seen else report['label'])
            seen.add(report['label'])
        ax.set_xlabel('stand-alone val prec@1 (mean over seeds)')
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_write(out, 'wb') as f:
        fig.savefig(f, format='png', dpi=110)
    plt.close(fig)

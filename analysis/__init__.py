"""Analysis of finished runs: trajectories, capacity-vs-regularization labels, figures, reports.

Python API (the CLI's ``report`` and ``analyze`` are thin layers over it)::

    from searchmgr.analysis import load_run, analyse_run, write_report, write_analyze
    run = load_run("runs/toy-a")
    print(analyse_run(run).verdict)
    write_report("runs/toy-a")            # -> runs/toy-a/report/report.md, report.html, *.png
"""

from searchmgr.analysis.classify import Analysis, Label, Part, Trajectory, Verdict, analyse_paths, analyse_run, classify
from searchmgr.analysis.run import KnobInfo, RunData, load_run

__all__ = [
    "Analysis", "Label", "Part", "Trajectory", "Verdict", "analyse_paths", "analyse_run", "classify", "KnobInfo",
    "RunData", "load_run", "write_report", "write_analyze",
]


def write_report(*args, **kwargs):
    """See :func:`searchmgr.analysis.report.write_report` (imported lazily: it loads matplotlib)."""
    from searchmgr.analysis.report import write_report as impl

    return impl(*args, **kwargs)


def write_analyze(*args, **kwargs):
    """See :func:`searchmgr.analysis.report.write_analyze` (imported lazily: it loads matplotlib)."""
    from searchmgr.analysis.report import write_analyze as impl

    return impl(*args, **kwargs)

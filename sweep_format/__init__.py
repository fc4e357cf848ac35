"""The sweep folder as a format: its layout, the trial record, the trial statuses, atomic writes.

The one layer every other imports (``trainables``, ``ablate`` and ``reports`` read and write sweep
folders through it), and which imports none of them: each rule of the format lives here once.

    from sweep_format import layout, records, statuses
    layout.is_sweep(Path("runs/temps"))                   # spec.yaml and trials/
    records.read_records(Path("runs/temps"))              # every trial record, damaged ones as stubs
    statuses.FINAL                                         # statuses a trial keeps
"""

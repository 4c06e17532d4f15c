"""Stage 6 — report: figures of one run, and a sweep's paper-style table.

``python -m tiedae.report [--sweep NAME] [overrides]`` (``make table``) reads a sweep's FINISHED
job runs, and writes mean ± std test accuracy over seeds — a row per setting (every logged
param but the seed, plus data and code identity; the newest run per seed), a column per
labeled count — as Markdown, LaTeX and CSV, plus a plot, with each pretrained row's fair
scratch row and the runs' provenance; under ``experiments/<sweep>/`` and to the sweep's
parent run.

Rooms: ``runs`` (the tidy frame of runs), ``axes`` (what the columns count), ``tables``
(accuracy table), ``stats`` (paired significance, power), ``plots``, ``published`` (against
published figures), ``write`` (the files), ``figures`` (a run's own figures), ``cli``.
"""

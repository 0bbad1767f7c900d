"""Run reports: a self-contained HTML page with one timeline per failing example, a JSON summary
and a PNG of each timeline.

``capture`` keeps what an example did, ``timeline`` turns it into lanes, bands and markers,
``answers`` and ``metrics`` measure it (webhook latency and answers, pending work, time to
recover), ``scale`` places its moments (a column per step, then the teardown's clock), ``svg``
and ``page`` draw it, ``browser`` drives headless Chromium, ``writer`` writes the folder.
"""

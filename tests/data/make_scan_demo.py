"""Write ``scan_demo.h5``: a tiny raw DXchange scan standing in for a user's own measurement.

It is synthetic (the shale stand-in of :mod:`simulate.shale`, measured with Poisson noise, flats and darks)
and says so in its ``source`` attribute, which every file made from it carries. It has no ``center``
attribute and its rotation axis is 3.3 pixels right of the detector centre, so a config must use
``center: auto`` (or the true value) to reconstruct it; and it has only 2 detector rows, to exercise
the few-rows path. Run from the repository root: ``python tests/data/make_scan_demo.py``.
"""

from pathlib import Path

import numpy as np

from simulate.io import write_arrays
from simulate.shale import FacilitySpec, ShaleSample, measure, shale_volume

OUT = Path(__file__).with_name("scan_demo.h5")
CENTER_OFFSET = 3.3
INCIDENT = 5000  # photons per pixel of its flats (tests/test_scanmatch.py checks the estimate from them)

if __name__ == "__main__":
    sample = ShaleSample(name="demo", size=128, slices=6, seed=7)
    facility = FacilitySpec(name="demo-beamline", n_angles=180, detector=128, rows=2, incident=INCIDENT,
                            blur=0.7, center_offset=CENTER_OFFSET)
    raw = measure(shale_volume(sample), facility, rng=np.random.default_rng(7), backend="astra")
    write_arrays(OUT, {"/exchange/data": raw["data"], "/exchange/data_white": raw["white"],
                       "/exchange/data_dark": raw["dark"], "/exchange/theta": raw["theta"]},
                 {"source": "synthetic-demo-scan", "sample": "demo", "facility": "demo-beamline",
                  "note": "synthetic stand-in for a user's scan (tests/data/make_scan_demo.py); "
                          f"true rotation axis {64 + CENTER_OFFSET} px"})
    print(OUT, raw["data"].shape, OUT.stat().st_size, "bytes")

"""Image quality that SSIM and PSNR do not see: noise texture, resolution, and the pores a porosity study finds.

SSIM and PSNR reward the pixel-wise error an MSE-trained denoiser minimises; TomoGAN's other losses are claimed to
help the texture of the noise left, sharp edges and small features (Kim et al. 2019). These measures are taken one
2-D slice at a time, on the slices :mod:`analysis.metrics` scores; :func:`slice_quality` gives every column
(:data:`COLUMNS`). How each is taken and why: docs/claims.md, "Primary and secondary metrics".

One module per idea: :mod:`~analysis.quality.rules` (every size and level, in one place),
:mod:`~analysis.quality.noise`, :mod:`~analysis.quality.resolution`, :mod:`~analysis.quality.pores` and
:mod:`~analysis.quality.score` (one slice, every column). Import the public names from here.

Geometry (that of :mod:`simulate.phantoms`): a slice is ``(rows, cols)``; a circle is ``(x, y, r)`` in pixels, ``x``
along rows and ``y`` along columns, from the slice centre ``((rows - 1) / 2, (cols - 1) / 2)``. Frequencies are in
cycles per pixel (Nyquist 0.5).

References
----------
.. [1] Kim, Lee, Ye, "A performance comparison of convolutional neural network-based image denoising
   methods: the effect of loss functions on low-dose CT images", Med. Phys. 46:3906 (2019).
.. [2] Solomon, Christianson, Samei, "Quantitative comparison of noise texture across CT scanners from
   different manufacturers", Med. Phys. 39:6048 (2012) -- the NPS mean frequency.
.. [3] van Heel, Schatz, "Fourier shell correlation threshold criteria", J. Struct. Biol. 151:250 (2005).
.. [4] Otsu, "A threshold selection method from gray-level histograms", IEEE Trans. SMC 9:62 (1979).
"""

from analysis.quality.noise import (NoisePowerSpectrum, mean_frequency, noise_power_spectrum, nps_frequency_ratio,
                                    uniform_region, white_mean_frequency)
from analysis.quality.pores import (PoreDetection, detect_pores, detect_reference_pores, detection_rate_by_radius,
                                    pore_region, pore_size_distribution, pore_threshold, porosity, render_circles,
                                    segment_pores)
from analysis.quality.resolution import EdgeWidth, edge_width, frc, frc_cutoff
from analysis.quality.rules import (COLUMNS, DETECT_IOU, EDGE_GUARD, EDGE_HALF_WIDTH, EDGE_MIN_RADIUS, EDGE_STEP,
                                    FRC_TAPER, FRC_THRESHOLD, MATRIX_BAND, NPS_ROI, PORE_LEVEL, PORE_MASK_ERODE,
                                    PORE_MIN_AREA, RADIUS_BINS, SMALL_PORE_RADIUS, UNIFORM_ERODE)
from analysis.quality.score import QualityContext, quality_context, slice_quality

__all__ = ["COLUMNS", "NoisePowerSpectrum", "EdgeWidth", "PoreDetection", "QualityContext",
           "uniform_region", "noise_power_spectrum", "mean_frequency", "white_mean_frequency",
           "nps_frequency_ratio", "edge_width", "frc", "frc_cutoff", "pore_threshold", "segment_pores",
           "porosity", "pore_size_distribution", "render_circles", "detect_pores", "detect_reference_pores",
           "detection_rate_by_radius", "pore_region", "quality_context", "slice_quality",
           "DETECT_IOU", "EDGE_GUARD", "EDGE_HALF_WIDTH", "EDGE_MIN_RADIUS", "EDGE_STEP", "FRC_TAPER", "FRC_THRESHOLD",
           "MATRIX_BAND", "NPS_ROI", "PORE_LEVEL", "PORE_MASK_ERODE", "PORE_MIN_AREA", "RADIUS_BINS",
           "SMALL_PORE_RADIUS", "UNIFORM_ERODE"]

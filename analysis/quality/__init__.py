"""Image quality that SSIM and PSNR do not see: noise texture, resolution, and the pores a porosity study finds.

SSIM and PSNR reward the pixel-wise mean-squared error that a denoiser trained on MSE minimises. The losses
TomoGAN adds (adversarial, perceptual) are claimed to help elsewhere: in the texture of the noise that is left,
in sharp edges, and in small features that stay detectable (Kim et al. 2019). This module measures those,
one 2-D slice at a time, on the slices :mod:`analysis.metrics` scores with SSIM/PSNR:

* **noise texture** -- the noise power spectrum (NPS) in uniform regions, its power-weighted mean frequency
  and its total power (:func:`uniform_region`, :func:`noise_power_spectrum`, :func:`mean_frequency`,
  :func:`nps_frequency_ratio`);
* **resolution** -- the 10-90 % width of the edge-spread function across known pore edges
  (:func:`edge_width`, needs the phantom), and the Fourier ring correlation with the reference, which needs
  none (:func:`frc`, :func:`frc_cutoff`);
* **the downstream task** -- pores segmented by one fixed rule, the porosity, the pore-size distribution
  and which true pores are found or invented (:func:`segment_pores`, :func:`porosity`,
  :func:`pore_size_distribution`, :func:`detect_pores`, :func:`detection_rate_by_radius`);
* :func:`slice_quality` -- the per-slice entry point; its columns are :data:`COLUMNS`.

Geometry conventions (those of :mod:`simulate.phantoms`): a slice is ``(rows, cols)``; a circle is
``(x, y, r)`` in pixels with ``x`` along rows and ``y`` along columns, both measured from the slice centre
``((rows - 1) / 2, (cols - 1) / 2)``. Frequencies are in cycles per pixel (Nyquist 0.5).

References
----------
.. [1] Kim, Lee, Ye, "A performance comparison of convolutional neural network-based image denoising
   methods: the effect of loss functions on low-dose CT images", Med. Phys. 46:3906 (2019).
.. [2] Solomon, Christianson, Samei, "Quantitative comparison of noise texture across CT scanners from
   different manufacturers", Med. Phys. 39:6048 (2012) -- the NPS mean frequency.
.. [3] van Heel, Schatz, "Fourier shell correlation threshold criteria", J. Struct. Biol. 151:250 (2005).
.. [4] Otsu, "A threshold selection method from gray-level histograms", IEEE Trans. SMC 9:62 (1979).

One module per idea: :mod:`~analysis.quality.rules` (every size and level, in one place),
:mod:`~analysis.quality.noise`, :mod:`~analysis.quality.resolution`, :mod:`~analysis.quality.pores`, and
:mod:`~analysis.quality.score` (one slice, every column). Import the public names from here.
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

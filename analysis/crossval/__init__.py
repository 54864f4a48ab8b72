"""Choosing a method without a reference: K-fold cross-validation over the acquired views.

Leave out a fold of the views, reconstruct (and denoise) from the others, forward-project the result at the left-out
angles and compare with what was measured there: a method that invents or smooths away structure predicts unseen
views badly. Why and how: docs/methods.md, "Choosing a method on your own scan, without a reference". The modules:
:mod:`~analysis.crossval.core` (folds and the held-out residual), :mod:`~analysis.crossval.candidates` (classical
methods, models and Noise2Inverse as reconstructors), :mod:`~analysis.crossval.rank` (tuning, ranking, and the same
candidates against a reference), :mod:`~analysis.crossval.images`, :mod:`~analysis.crossval.check` (the held-out
choices against the reference's; every route on a scan and its cost) and :mod:`~analysis.crossval.cli`
(``python -m analysis.crossval``).
"""

from analysis.crossval.candidates import (StartCache, ModelEntry, candidate_label, classical_reconstructor,
                                         fbp_bm3d_reconstructor, fbp_reconstructor, fbp_tv_reconstructor,
                                         model_entries, model_label, model_reconstructor, n2i_candidates,
                                         n2i_reconstructor, sirt_reconstructor)
from analysis.crossval.check import (COST_KINDS, CheckResult, check, check_markdown, route_costs, routes_markdown,
                                     routes_table)
from analysis.crossval.cli import main
from analysis.crossval.core import (MODEL_PREFIX, N2I_PREFIX, RESIDUALS, SEARCHES, HoldoutResult, Reconstructor,
                                    TuneResult, fold_result, folds, fov_rays, grid_descent, held_out_folds,
                                    holdout_residual, residual_kind)
from analysis.crossval.images import RankedImages, images_figure, read_images, write_images
from analysis.crossval.rank import (against_reference, all_view_candidates, rank_methods, tune_against_reference,
                                   tune_by_holdout)

__all__ = ["Reconstructor", "HoldoutResult", "TuneResult", "ModelEntry", "StartCache", "MODEL_PREFIX", "RESIDUALS",
           "SEARCHES", "grid_descent", "folds", "fov_rays", "residual_kind", "held_out_folds", "fold_result",
           "fbp_reconstructor",
           "sirt_reconstructor", "fbp_tv_reconstructor", "fbp_bm3d_reconstructor", "model_reconstructor",
           "n2i_reconstructor", "n2i_candidates",
           "model_label", "model_entries", "classical_reconstructor", "holdout_residual",
           "tune_by_holdout", "rank_methods", "against_reference", "tune_against_reference", "all_view_candidates",
           "candidate_label", "RankedImages", "write_images", "read_images", "images_figure", "CheckResult", "check",
           "check_markdown", "routes_table", "route_costs", "COST_KINDS", "routes_markdown", "N2I_PREFIX", "main"]

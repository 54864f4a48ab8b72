"""The result tables: a model at several seeds is one row, the mean over its seeds; the run table decides."""

import pandas as pd
import pytest

from analysis.tables import ablation_table, collapse_seeds, main_table, quality_table

RUNS = [{"run": f"foam-s8-d3-{ls}-s{s}", "base": f"foam-s8-d3-{ls}", "split": "foam", "depth": 3, "loss_set": ls,
         "seed": s, "mse_warmup": 0} for ls in ("all", "mse") for s in (0, 1, 2)]


def _summary():
    rows = [{"dataset": "foam3", "dose": "sparse-8", "method": "fbp", "model": "", "source": "sim", "vgg_weights": "",
             "tuning": "", "ssim_mean": 0.4, "psnr_mean": 17.0, "edge_width_mean": 3.0}]
    for r, (ssim, edge) in zip(RUNS, [(0.80, 2.0), (0.82, 2.1), (0.84, 2.2), (0.70, 2.5), (0.71, 2.5), (0.72, 2.5)]):
        rows.append({"dataset": "foam3", "dose": "sparse-8", "method": "tomogan", "model": r["run"], "source": "sim",
                     "vgg_weights": "random-init", "tuning": "", "ssim_mean": ssim, "psnr_mean": 20.0,
                     "edge_width_mean": edge, "n_slices": 8})
    return pd.DataFrame(rows)


def test_seeds_collapse_to_their_mean_and_spread():
    df = collapse_seeds(_summary(), RUNS)
    tg = df[df["method"] == "tomogan"].set_index("model")
    assert tg.loc["foam-s8-d3-all", "ssim_mean"] == pytest.approx(0.82) and tg.loc["foam-s8-d3-all", "n_seeds"] == 3
    assert tg.loc["foam-s8-d3-all", "ssim_seed_sd"] == pytest.approx(0.02)
    assert len(tg) == 2 and (df.loc[df["method"] == "fbp", "n_seeds"] == 1).all()
    with pytest.raises(ValueError, match="not in the run table"):
        collapse_seeds(_summary(), RUNS[:3])


def test_the_main_table_shows_the_seed_mean_and_says_so():
    df = collapse_seeds(_summary(), RUNS)
    table = main_table(df, {"foam3": {"foam-s8-d3-all"}})
    assert table["TomoGAN (trained here)"].iloc[0].startswith("**0.820")
    assert table["model"].iloc[0] == "foam-s8-d3-all (mean of 3 seeds)"
    ab = ablation_table(df)
    assert list(ab["n_seeds"]) == [3, 3] and list(ab["loss_set"]) == ["all", "mse"]
    quality = quality_table(df, {"foam3": {"foam-s8-d3-all"}})
    assert list(quality["method"]) == ["FBP", "TomoGAN (trained here)"]
    assert list(quality["edge 10-90 % (px)"]) == [3.0, 2.1]

"""Training data for TomoGAN: paired volumes, their normalisation, and random patches of d slices.

Two input layouts are read. **Volumes**: one HDF5 file each, a 3-D dataset ``(slices, rows, cols)``:
``/recon`` when present, else the file's only 3-D dataset, else the one named by ``key``; a low-dose
volume and its normal-dose one have the same shape. **The public release's single file** (``-dsfn``):
``train_ns``, ``train_gt``, ``test_ns``, ``test_gt``, each ``(N, H, W)`` (ns = low dose, gt = normal
dose; ``test_*`` validates). Every problem is an :class:`~simulate.plumbing.InputError` naming the file.

Normalisation is one affine map for input and output, ``z = (v - offset) / scale``, that travels with the
model (checkpoint and served card), of one of three kinds:

- ``"zscore"``: the normal-dose training volumes' mean and std (fast to train from scratch on a CPU);
- ``"grey255"``: their 0.5th..99.5th percentile range mapped to 0..255, the grey-level scale of the
  public release, on which its loss weights (MSE 0.5, adversarial 20, perceptual 2) were chosen;
- ``"input"``: each volume mapped by its own *low-dose* volume's mean and (population) std, the only
  thing known at inference (:func:`input_stats`); the same map applies to its normal-dose target in
  training and maps the output back. Mean and std are exactly equivariant under ``v -> a v + b``
  (``a > 0``), so a model denoises ``a x + b`` into ``a denoise(x) + b`` (up to float error) whatever
  units it was trained in (percentiles would be too; mean and std are the simplest exact, streamable
  ones). The stored map is the identity; :meth:`Normalization.for_volume` gives a volume's. The VGG
  window is fixed at training: the 0.5th..99.5th percentiles of the normal-dose targets, each in its own
  pair's network units.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

import h5py
import numpy as np

from simulate.io import read_array, read_attrs
from simulate.plumbing import InputError

__all__ = [
    "RELEASE_KEYS",
    "NORMALIZATIONS",
    "Normalization",
    "RunningStats",
    "input_stats",
    "VolumePair",
    "find_volume_key",
    "CORPUS_ATTRS",
    "describe_training_data",
    "read_volume",
    "read_pair",
    "read_release_file",
    "split_held_out",
    "stack_neighbours",
    "PatchSampler",
]

logger = logging.getLogger(__name__)

RELEASE_KEYS = ("train_ns", "train_gt", "test_ns", "test_gt")
NORMALIZATIONS = ("zscore", "grey255", "input")  # "input": per volume, from its low-dose input


class RunningStats:
    """Mean and (population) standard deviation of values added block by block, in float64.

    Blocks are merged with Chan et al.'s pairwise update, so a volume read slab by slab gives the same
    numbers as the whole volume: :func:`input_stats` adds one slice at a time, whatever the slab.

    Examples
    --------
    >>> s = RunningStats()
    >>> s.add(np.array([0.0, 1.0])); s.add(np.array([2.0, 3.0]))
    >>> s.mean, round(s.std ** 2, 6)
    (1.5, 1.25)
    """

    def __init__(self):
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, values) -> None:
        x = np.asarray(values, np.float64).ravel()
        if not x.size:
            return
        mean_b = float(x.mean())
        m2_b = float(np.square(x - mean_b).sum())
        n_a, n_b = self.count, x.size
        n = n_a + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * n_a * n_b / n
        self.count = n

    def add_slices(self, volume) -> None:
        """Add a (slices, rows, cols) block one slice at a time (the order :func:`input_stats` uses)."""
        for sl in volume:
            self.add(sl)

    @property
    def std(self) -> float:
        return float(np.sqrt(self.m2 / self.count)) if self.count else 0.0

    def as_map(self) -> Tuple[float, float]:
        """``(offset, scale)`` of the ``"input"`` normalisation: (mean, std).

        Raises
        ------
        ValueError
            No values, non-finite values, or a constant volume (std 0: no scale to normalise by).
        """
        if not self.count:
            raise ValueError("input volume is empty: no statistics to normalise by")
        offset, scale = float(self.mean), self.std
        if not (np.isfinite(offset) and np.isfinite(scale)):
            raise ValueError("input volume holds NaN or Inf: no statistics to normalise by")
        if not scale > 0:
            raise ValueError("input volume is constant: no scale to normalise by (normalization 'input')")
        return offset, scale


def input_stats(volume: Iterable[np.ndarray]) -> Tuple[float, float]:
    """``(offset, scale)`` of the ``"input"`` normalisation of a low-dose volume (a (slices, rows, cols) array
    or any iterable of its slices): its mean and std, added one slice at a time (:class:`RunningStats`).

    Examples
    --------
    >>> input_stats(np.array([[[1.0, 3.0]], [[1.0, 3.0]]]))
    (2.0, 1.0)
    """
    stats = RunningStats()
    stats.add_slices(volume)
    return stats.as_map()


@dataclass(frozen=True)
class Normalization:
    """Affine map between data values and the network's scale: ``z = (v - offset) / scale`` (module docstring)."""

    offset: float
    scale: float
    # the [0, 1] window the VGG features see, in network units: vgg_in = (z - vgg_lo) / (vgg_hi - vgg_lo)
    vgg_lo: float = -3.0
    vgg_hi: float = 3.0
    kind: str = "zscore"  # how it was fitted: one of NORMALIZATIONS

    def __post_init__(self):
        if not np.isfinite(self.offset) or not np.isfinite(self.scale) or self.scale <= 0:
            raise ValueError(f"normalisation needs a finite offset and a positive scale, got {self}")
        if not self.vgg_hi > self.vgg_lo:
            raise ValueError(f"vgg window must have vgg_hi > vgg_lo, got {self}")

    @property
    def per_input(self) -> bool:
        """True when each volume is mapped by its own low-dose input's statistics (kind ``"input"``)."""
        return self.kind == "input"

    @classmethod
    def fit(cls, volumes: Sequence[np.ndarray], kind: str = "zscore", *,
            inputs: Optional[Sequence[np.ndarray]] = None, names: Optional[Sequence[str]] = None) -> "Normalization":
        """Fit the map on ``volumes``, the normal-dose training data.

        The VGG window spans their 0.5th to 99.5th percentile, so that the perceptual features see the
        ``[0, 1]`` range their weights expect. For ``"input"``, ``inputs`` are the paired low-dose volumes
        and ``names`` name the pairs in errors.

        Examples
        --------
        >>> n = Normalization.fit([np.array([[[0.0, 2.0]]])])
        >>> n.offset, n.scale
        (1.0, 1.0)
        >>> n = Normalization.fit([np.array([[[0.0, 4.0]]])], "input", inputs=[np.array([[[1.0, 3.0]]])])
        >>> n.offset, n.scale, n.kind, round(n.vgg_lo, 2), round(n.vgg_hi, 2)
        (0.0, 1.0, 'input', -1.98, 1.98)
        """
        if kind not in NORMALIZATIONS:
            raise ValueError(f"normalisation must be one of {NORMALIZATIONS}, got {kind!r}")
        if kind == "input":
            return cls._fit_input(volumes, inputs, names)
        values = np.concatenate([np.asarray(v, np.float64).ravel() for v in volumes])
        lo, hi = np.percentile(values, [0.5, 99.5])
        if kind == "zscore":
            offset, scale = float(values.mean()), float(values.std())
        else:
            offset, scale = float(lo), float((hi - lo) / 255.0)
        if not scale > 0:
            raise ValueError("normal-dose training data are constant: nothing to learn")
        return cls(offset=offset, scale=scale, vgg_lo=float((lo - offset) / scale),
                   vgg_hi=float((hi - offset) / scale), kind=kind)

    @classmethod
    def _fit_input(cls, volumes, inputs, names) -> "Normalization":
        if inputs is None or len(inputs) != len(volumes):
            raise ValueError("normalisation 'input' is fitted per pair: give the low-dose inputs of the volumes")
        identity = cls(offset=0.0, scale=1.0, kind="input")
        parts = []
        for i, (normal, low) in enumerate(zip(volumes, inputs)):
            name = names[i] if names is not None else f"training input {i}"
            parts.append(np.asarray(identity.for_volume(low, name=name).to_net(normal), np.float64).ravel())
        lo, hi = np.percentile(np.concatenate(parts), [0.5, 99.5])
        if not hi > lo:
            raise ValueError("normal-dose training data are constant: nothing to learn")
        return cls(offset=0.0, scale=1.0, vgg_lo=float(lo), vgg_hi=float(hi), kind="input")

    def with_map(self, offset: float, scale: float) -> "Normalization":
        """This normalisation with the affine map ``(offset, scale)`` (the VGG window and kind kept)."""
        return replace(self, offset=float(offset), scale=float(scale))

    def for_volume(self, low: np.ndarray, *, name: str = "") -> "Normalization":
        """The map that applies to a volume whose low-dose input is ``low``: this one, or for ``"input"``
        ``low``'s own.

        Raises
        ------
        InputError
            (a ValueError) ``low`` is constant or not finite, naming ``name`` (default "input volume").
        """
        if not self.per_input:
            return self
        try:
            return self.with_map(*input_stats(low))
        except ValueError as exc:
            raise InputError(name or "input volume", str(exc)) from None

    def to_net(self, v: np.ndarray) -> np.ndarray:
        """Data values to network units (float32)."""
        return ((np.asarray(v, np.float32) - np.float32(self.offset)) / np.float32(self.scale)).astype(np.float32)

    def from_net(self, z: np.ndarray) -> np.ndarray:
        """Network units back to data values (float32)."""
        return (np.asarray(z, np.float32) * np.float32(self.scale) + np.float32(self.offset)).astype(np.float32)

    def as_dict(self) -> dict:
        return asdict(self)

    def card_scale(self) -> dict:
        """The served card's ``input_scale``: network input = (data - offset) / scale, output inverted.

        For ``"input"`` the served module's own map is the identity, and ``per_input`` says how a caller
        maps each volume before it and back after it (the ``note`` says it in words).
        """
        if self.per_input:
            return {"kind": "affine", "offset": 0.0, "scale": 1.0,
                    "per_input": {"offset": "mean", "scale": "std",
                                  "over": "the whole low-dose input volume (all its slices)"},
                    "note": ("normalization 'input': the module works in network units; map each input volume "
                             "by its own mean and std, z = (data - mean) / std, before it and the output back with "
                             "data = z * std + mean (tomogan_core.modelfile.load_any/denoise do this); "
                             "a plain call on raw data is not normalised")}
        how = ("z-score with the mean and std" if self.kind == "zscore"
               else "0.5..99.5 percentile range to 0..255 grey levels, fitted on")
        return {"kind": "affine", "offset": self.offset, "scale": self.scale,
                "note": f"{how} of the normal-dose training volumes; output mapped back the same way"}


@dataclass
class VolumePair:
    """A low-dose volume and its normal-dose target, both ``(slices, rows, cols)`` float32."""

    low: np.ndarray
    normal: np.ndarray
    name: str = ""  # for logs and provenance, e.g. the low-dose file's path

    @property
    def n_slices(self) -> int:
        return int(self.low.shape[0])


def find_volume_key(path, key: Optional[str] = None) -> str:
    """Name of the 3-D dataset of a volume file: ``key``, else ``/recon``, else the only 3-D dataset."""
    if key:
        return key
    names: List[str] = []
    try:
        with h5py.File(path, "r") as f:
            if "recon" in f and isinstance(f["recon"], h5py.Dataset):
                return "/recon"
            f.visititems(lambda n, obj: names.append("/" + n)
                         if isinstance(obj, h5py.Dataset) and obj.ndim == 3 else None)
    except OSError:
        return "/recon"  # let read_array report the unreadable file in its own words
    if len(names) == 1:
        return names[0]
    if not names:
        raise InputError(path, "holds no 3-D dataset (slices, rows, cols)")
    raise InputError(path, f"holds several 3-D datasets {names[:4]}: name one with the dataset key option")


def read_volume(path, key: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray, dict]:
    """Read a volume (float32), its slice indices (``/slices`` when the file has it, else ``0..slices-1``)
    and the file's root attributes."""
    if not Path(path).exists():
        raise InputError(path, "file not found")
    name = find_volume_key(path, key)
    vol = read_array(path, name, ndim=3)
    if min(vol.shape) < 1:
        raise InputError(path, f"dataset '{name}' is empty, shape {vol.shape}")
    with h5py.File(path, "r") as f:
        has_slices = name == "/recon" and "slices" in f
    if has_slices:
        idx = read_array(path, "/slices", ndim=1, dtype_kind="iu", dtype=np.int64)
        if idx.shape[0] != vol.shape[0]:
            raise InputError(path, f"{idx.shape[0]} slice indices for {vol.shape[0]} slices")
    else:
        idx = np.arange(vol.shape[0], dtype=np.int64)
    return vol, idx, read_attrs(path)


def _check_pair(low, normal, low_path, normal_path, depth):
    if low.shape != normal.shape:
        raise InputError(low_path, f"shape {low.shape} differs from the normal-dose {normal_path} shape {normal.shape}")
    if low.shape[0] < depth:
        raise InputError(low_path, f"has {low.shape[0]} slices, fewer than the depth d = {depth}")


def read_pair(low_path, normal_path, *, depth: int, key_low=None, key_normal=None) -> VolumePair:
    """Read a (low-dose, normal-dose) pair of volume files and check that they match.

    Slices are matched by the files' ``/slices`` indices when both have them (e.g. the SIRT of a few
    central slices against a full FBP reference), else position by position.
    """
    low, li, _ = read_volume(low_path, key_low)
    normal, ni, _ = read_volume(normal_path, key_normal)
    if not np.array_equal(li, ni) and low.shape[1:] == normal.shape[1:] and np.isin(li, ni).all():
        position = {int(s): i for i, s in enumerate(ni)}
        normal = normal[[position[int(s)] for s in li]]
    _check_pair(low, normal, low_path, normal_path, depth)
    return VolumePair(low=low, normal=normal, name=str(low_path))


def read_release_file(path, *, depth: int) -> Tuple[VolumePair, VolumePair]:
    """Read the public release's single training file: (train pair, test pair used for validation)."""
    arrays = {k: read_array(path, "/" + k, ndim=3) for k in RELEASE_KEYS}
    train = VolumePair(arrays["train_ns"], arrays["train_gt"], name=f"{path}:train")
    test = VolumePair(arrays["test_ns"], arrays["test_gt"], name=f"{path}:test")
    _check_pair(train.low, train.normal, f"{path}:/train_ns", "/train_gt", depth)
    _check_pair(test.low, test.normal, f"{path}:/test_ns", "/test_gt", depth)
    return train, test


def split_held_out(pair: VolumePair, *, fraction: float, depth: int) -> Tuple[VolumePair, VolumePair]:
    """Hold out the last ``fraction`` of a volume's slices for validation.

    ``depth`` slices between the two parts are dropped, so that no validation slice is ever a
    neighbour (an input channel) of a training target. Returns (train, validation).
    """
    n = pair.n_slices
    n_val = max(depth, int(round(n * fraction)))
    n_train = n - n_val - depth
    if n_train < depth:
        raise InputError(pair.name, f"{n} slices are too few to hold out {n_val} for validation "
                                    f"(and a gap of {depth}) at depth {depth}; give a validation volume")
    train = VolumePair(pair.low[:n_train], pair.normal[:n_train], name=pair.name + f"[0:{n_train}]")
    val = VolumePair(pair.low[n - n_val:], pair.normal[n - n_val:], name=pair.name + f"[{n - n_val}:{n}]")
    return train, val


def validation_indices(n_slices: int, *, val_slices: int, depth: int, held_out_fraction: Optional[float] = None):
    """Slice indices of a volume that training validates on (and the classical methods are tuned on):
    the ``val_slices`` central slices of a validation volume (``held_out_fraction`` None) or of a training
    volume's held-out end (:func:`split_held_out`) -- exactly what :func:`tomogan_core.train.validate` scores.

    Examples
    --------
    >>> validation_indices(64, val_slices=4, depth=3).tolist()
    [30, 31, 32, 33]
    >>> validation_indices(48, val_slices=4, depth=3, held_out_fraction=0.2).tolist()
    [41, 42, 43, 44]
    """
    from simulate.reconstruct import central_slices

    if held_out_fraction is None:
        return central_slices(n_slices, val_slices)
    n_val = max(depth, int(round(n_slices * held_out_fraction)))
    return (n_slices - n_val) + central_slices(n_val, val_slices)


def stack_neighbours(volume: np.ndarray, index: int, depth: int) -> np.ndarray:
    """The ``depth`` slices centred on ``index``, edge slices repeated at the volume's ends.

    Examples
    --------
    >>> v = np.arange(3)[:, None, None] * np.ones((3, 1, 1))
    >>> stack_neighbours(v, 0, 3)[:, 0, 0].tolist()
    [0.0, 0.0, 1.0]
    """
    half = depth // 2
    idx = np.clip(np.arange(index - half, index + half + 1), 0, volume.shape[0] - 1)
    return volume[idx]


class PatchSampler:
    """Random training patches: ``d`` adjacent low-dose slices and the normal-dose centre slice.

    Parameters
    ----------
    pairs : list of VolumePair
        Training volumes, already in network units.
    rng : numpy.random.Generator
        The only random source; its state is saved in checkpoints so that a resumed run draws the
        same patches as an uninterrupted one.
    augment : bool
        Random horizontal flip and 90-degree rotation, the same for input and target.
    shard : (rank, world), optional
        Draw only the patch start slices ``s`` with ``s % world == rank`` (distributed training: each
        process its own shard); ``(0, 1)`` draws from every slice.
    """

    def __init__(self, pairs: Sequence[VolumePair], *, depth: int, patch: int, rng: np.random.Generator,
                 augment: bool = True, shard: Tuple[int, int] = (0, 1)):
        self.pairs = list(pairs)
        self.depth, self.patch, self.rng, self.augment = depth, patch, rng, augment
        self.rank, self.world = int(shard[0]), int(shard[1])
        for p in self.pairs:
            if p.n_slices < depth:
                raise InputError(p.name, f"has {p.n_slices} slices, fewer than the depth d = {depth}")
            if min(p.low.shape[1:]) < patch:
                raise InputError(p.name, f"slices of {p.low.shape[1:]} are smaller than the patch size {patch}")
        # a volume is picked in proportion to its number of training positions (in this shard)
        self.starts = [np.arange(p.n_slices - depth + 1)[self.rank::self.world] for p in self.pairs]
        counts = np.array([len(s) for s in self.starts], dtype=np.float64)
        if counts.sum() == 0:
            raise InputError(self.pairs[0].name, f"too few slices for {self.world} shards at depth d = {depth}")
        self.weights = counts / counts.sum()

    def sample(self, batch: int) -> Tuple[np.ndarray, np.ndarray]:
        """Draw a batch: inputs ``(B, d, P, P)`` and targets ``(B, 1, P, P)``, float32."""
        d, p = self.depth, self.patch
        xs = np.empty((batch, d, p, p), np.float32)
        ys = np.empty((batch, 1, p, p), np.float32)
        for b in range(batch):
            which = int(self.rng.choice(len(self.pairs), p=self.weights))
            pair, starts = self.pairs[which], self.starts[which]
            s = int(starts[self.rng.integers(0, len(starts))])
            r = int(self.rng.integers(0, pair.low.shape[1] - p + 1))
            c = int(self.rng.integers(0, pair.low.shape[2] - p + 1))
            x = pair.low[s:s + d, r:r + p, c:c + p]  # (d, P, P)
            y = pair.normal[s + d // 2, r:r + p, c:c + p][None]  # (1, P, P)
            if self.augment:
                k = int(self.rng.integers(0, 4))
                flip = bool(self.rng.integers(0, 2))
                x, y = np.rot90(x, k, axes=(1, 2)), np.rot90(y, k, axes=(1, 2))
                if flip:
                    x, y = x[:, :, ::-1], y[:, :, ::-1]
            xs[b], ys[b] = x, y
        return xs, ys


CORPUS_ATTRS = ("dataset", "source", "family", "dose", "dose_mode", "dose_level", "n_angles", "center", "seed",
                "max_line_integral", "noise_incident", "matched_to")


def _sorted_unique(values) -> list:
    """Distinct values (lists as their text), numbers before the rest, each group in its own order."""
    values = {str(v) if isinstance(v, (list, dict)) else v for v in values}
    number = (int, float, np.number)
    return sorted(values, key=lambda v: (0, float(v), "") if isinstance(v, number) else (1, 0.0, str(v)))


def _describe_volume(path, role: str, key: Optional[str]) -> dict:
    """One volume file's entry for :func:`describe_training_data` (root attributes and the volume's width)."""
    entry = {"role": role, "file": str(path)}
    try:
        attrs = read_attrs(path)
    except (InputError, OSError) as exc:
        logger.warning("%s: no attributes read for the training-data record (%s)", path, exc)
        return entry
    entry.update({k: attrs[k] for k in CORPUS_ATTRS if k in attrs})
    try:
        with h5py.File(path, "r") as f:
            shape = f[find_volume_key(path, key)].shape  # the shape alone, not the array
        entry["detector"] = int(shape[-1])
    except (InputError, OSError, KeyError, IndexError):
        pass
    return entry


def describe_training_data(ld_paths: Sequence, vld_paths: Sequence = (), *, key: Optional[str] = None,
                           val_key: Optional[str] = None) -> dict:
    """The training corpus as the model's provenance records it: per volume file and in summary.

    Reads the root attributes and the volume's shape (not the array) of each low-dose training (``-ld``)
    and validation (``-vld``) file; a file without some attribute (or unreadable) is recorded with what
    is there. ``val_key`` defaults to ``key``.

    Returns
    -------
    dict
        ``volumes``: per file, ``role`` (``train`` or ``val``), ``file``, ``detector`` (the volume's
        width in pixels) and those of :data:`CORPUS_ATTRS` the file has. ``summary``: ``families`` (the
        ``family`` attribute, else the ``dataset`` name, of each volume), ``doses`` (dose labels),
        ``geometry`` (``"N views x M px"`` of the volumes that record both), ``seeds`` (these lists sorted
        and without repeats) and ``n_volumes`` (``{"train": ..., "val": ...}``).

    Examples
    --------
    >>> describe_training_data([])["summary"]["n_volumes"]
    {'train': 0, 'val': 0}
    """
    volumes = ([_describe_volume(p, "train", key) for p in ld_paths]
               + [_describe_volume(p, "val", val_key or key) for p in vld_paths])
    families = [v.get("family", v.get("dataset")) for v in volumes]
    known = [v for v in volumes if "detector" in v and isinstance(v.get("n_angles"), (int, float))]
    geometry = sorted({(int(v["n_angles"]), v["detector"]) for v in known if np.isfinite(v["n_angles"])})
    summary = {"families": _sorted_unique(f for f in families if f is not None),
               "doses": _sorted_unique(v["dose"] for v in volumes if "dose" in v),
               "geometry": [f"{views} views x {width} px" for views, width in geometry],
               "seeds": _sorted_unique(v["seed"] for v in volumes if "seed" in v),
               "n_volumes": {role: sum(v["role"] == role for v in volumes) for role in ("train", "val")}}
    return {"volumes": volumes, "summary": summary}

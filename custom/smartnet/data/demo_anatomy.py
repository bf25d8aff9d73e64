"""The lesion-free head of the synthetic demo CT: skull, scalp, skull base, brain with cortex, sulci and ventricles.

Everything is built on a millimetre grid from smooth random fields, so that no two heads are alike and the image
holds the normal findings a model must learn to leave alone: brain touching the inner table (no CSF rim) with the
scanner's partial-volume ramp, grey-matter cortex and CSF-filled sulci, a dense falx and superior sagittal sinus,
calcified choroid plexus and pineal gland (100-400 HU), the petrous ridges, air cells and orbits of the skull base,
beam-hardening streaks in the posterior fossa, an old hypodense infarct now and then, and the head holder.

Units: HU for intensities, mm for distances. Arrays are ``(X, Y, Z)`` = (right-left, posterior-anterior,
inferior-superior) in the voxel order of a LAS NIfTI.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "HeadAnatomy", "SyntheticHeadCT", "build_head", "convexity_direction", "random_point", "scan", "skull_glare",
    "smooth_noise",
]


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int, int], scale: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1] of ``shape``, made at 1/``scale`` in-plane resolution and zoomed up."""
    small = [max(2, s // scale) for s in shape[:2]] + [max(2, shape[2] // 2)]
    field = ndimage.gaussian_filter(rng.standard_normal(small).astype(np.float32), 1.0)
    for axis, size in enumerate(shape):  # linear zoom to ``shape`` (scipy's ``zoom(order=1)``), one axis at a time
        field = np.moveaxis(np.tensordot(_linear_weights(field.shape[axis], size), field, axes=(1, axis)), 0, axis)
    field *= 1.0 / (np.abs(field).max() + 1e-6)
    return np.ascontiguousarray(field, dtype=np.float32)


def _linear_weights(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` linear interpolation matrix mapping the ends onto the ends (``align_corners``), float32."""
    position = np.linspace(0.0, n_in - 1.0, n_out)
    low = np.clip(np.floor(position).astype(int), 0, n_in - 2)
    frac = (position - low).astype(np.float32)
    weights = np.zeros((n_out, n_in), np.float32)
    weights[np.arange(n_out), low] = 1.0 - frac
    weights[np.arange(n_out), low + 1] += frac
    return weights


def scan(rng: np.random.Generator, image: np.ndarray, spacing_xy: float) -> np.ndarray:
    """The scanner's view of an ideal ``image`` (X, Y, Z, HU) with in-plane pixels of ``spacing_xy`` mm: partial-volume
    blur (in-plane point spread of 0.4-0.8 mm and the slice profile, which turn every bone edge into a ramp through
    blood's 50-90 HU), correlated quantum noise of 2-5 HU and a HU offset of up to 3 HU."""
    sigma_mm = float(rng.uniform(0.4, 0.8))
    image = ndimage.gaussian_filter(image, (sigma_mm / spacing_xy, sigma_mm / spacing_xy, rng.uniform(0.2, 0.4)))
    grain = ndimage.gaussian_filter(rng.standard_normal(image.shape).astype(np.float32), (0.6, 0.6, 0))
    return image + grain * (float(rng.uniform(2.0, 5.0)) / (grain.std() + 1e-6)) + float(rng.uniform(-3.0, 3.0))


def skull_glare(rng: np.random.Generator, depth_mm: np.ndarray, cavity: np.ndarray, cell: int) -> np.ndarray:
    """HU to add inside the skull for the scanner's bright band along the inner table, ``(X, Y, Z)`` float32.

    Beam hardening, scatter and the wide tail of the point spread raise the density of whatever lies within a few mm
    of the skull. On the real GE head CT (``../shared/data/head_ct_ge``; median over the mid-brain slices by distance
    from the bone contour at 300 HU) the brain reads 68 HU at 1-2 mm, 52 at 2-3, 45 at 3-4 and 42 at 4-5 against 38
    deeper in, so that about half of the cavity pixels within 3 mm of the bone have blood's 55-90 HU: the band a
    model trained without it calls a thin subdural haematoma. Here the excess decays exponentially with the depth
    below the inner table (``depth_mm``, mm, positive inside; decay length 1.0-1.8 mm), with a strength that varies
    between scans and around the head (a smooth field of cell ``cell`` pixels); ``scan`` then blurs it with the rest.
    """
    rng = rng.spawn(1)[0]  # its own stream: every other draw of the volume stays as it was without the band
    decay = float(rng.uniform(1.0, 1.8))
    strength = float(rng.uniform(50.0, 160.0)) * np.clip(0.6 + 0.6 * smooth_noise(rng, depth_mm.shape, cell), 0, None)
    excess = strength * np.exp(-np.clip(depth_mm, 0.0, None) / decay)
    return np.where(cavity, excess, 0.0).astype(np.float32)


@dataclass
class SyntheticHeadCT:
    """One synthetic volume: ``image`` (X, Y, Z) int16 HU, ``mask`` (X, Y, Z) uint8, ``affine`` 4x4 (LAS, mm), and the
    ``kinds`` of bleed drawn in it."""

    image: np.ndarray
    mask: np.ndarray
    affine: np.ndarray
    kinds: tuple[str, ...]

    @property
    def spacing(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in np.abs(np.diag(self.affine)[:3]))  # type: ignore[return-value]

    @classmethod
    def from_arrays(cls, image: np.ndarray, mask: np.ndarray, x: np.ndarray, y: np.ndarray, z: np.ndarray,
                    slice_thickness: float, kinds) -> "SyntheticHeadCT":
        """HU ``image`` (clipped, int16), ``mask`` and the LAS affine of the scanner grid ``x``, ``y``, ``z`` (mm)."""
        spacing_xy = float(y[1] - y[0])
        affine = np.diag([-spacing_xy, spacing_xy, slice_thickness, 1.0])
        affine[:3, 3] = [x[0] * -1.0, y[0], z[0]]
        return cls(np.clip(np.rint(image), -1024, 3071).astype(np.int16), mask.astype(np.uint8), affine, tuple(kinds))


@dataclass
class HeadAnatomy:
    """A lesion-free head before blur and noise.

    ``image`` (X, Y, Z) float32 HU; ``X``, ``Y``, ``Z`` the head-aligned mm grid (X left-right, Y posterior-anterior,
    Z inferior-superior, origin at the brain centre); ``surface_mm`` signed radial distance from the brain surface (mm,
    negative inside); ``inner_table_mm`` the CSF rim thickness there (the inner table lies at
    ``surface_mm == inner_table_mm``); ``cavity`` the intracranial space; ``brain``, ``ventricles``, ``sulci``
    boolean masks.
    """

    image: np.ndarray
    X: np.ndarray
    Y: np.ndarray
    Z: np.ndarray
    surface_mm: np.ndarray
    inner_table_mm: np.ndarray
    cavity: np.ndarray
    brain: np.ndarray
    ventricles: np.ndarray
    sulci: np.ndarray


def _ellipsoid(X: np.ndarray, Y: np.ndarray, Z: np.ndarray, centre, radii) -> np.ndarray:
    return ((X - centre[0]) / radii[0]) ** 2 + ((Y - centre[1]) / radii[1]) ** 2 + ((Z - centre[2]) / radii[2]) ** 2


def _segment_distance(X: np.ndarray, Y: np.ndarray, a, b) -> np.ndarray:
    """In-plane distance (mm) from every (X, Y) to the segment a-b."""
    ab = np.array(b, np.float32) - np.array(a, np.float32)
    t = np.clip(((X - a[0]) * ab[0] + (Y - a[1]) * ab[1]) / float(ab @ ab), 0, 1)
    return np.sqrt((X - a[0] - t * ab[0]) ** 2 + (Y - a[1] - t * ab[1]) ** 2)


def build_head(
    rng: np.random.Generator, x: np.ndarray, y: np.ndarray, z: np.ndarray, scale: float
) -> HeadAnatomy:
    """Draw one lesion-free head on the scanner grid ``x``, ``y``, ``z`` (mm, 1-D), brain size factor ``scale``."""
    shape = (len(x), len(y), len(z))
    Xs, Ys, Z = np.meshgrid(x.astype(np.float32), y.astype(np.float32), z.astype(np.float32), indexing="ij")
    yaw = np.deg2rad(rng.uniform(-8, 8))  # the head is never quite straight in the gantry
    X = np.cos(yaw) * Xs + np.sin(yaw) * Ys
    Y = -np.sin(yaw) * Xs + np.cos(yaw) * Ys
    ax, ay, az = 68.0 * scale, 84.0 * scale, 62.0 * scale  # brain semi-axes (mm), LR / AP / SI
    atrophy = float(rng.uniform(0.2, 1.5))  # 0.2 young and tight, 1.5 wide sulci and ventricles
    px = max(1, int(round(8.0 / abs(x[1] - x[0]))))  # pixels in 8 mm: the noise cell of gyri and sulci

    # brain surface: an ellipsoid deformed by smooth noise; surface_mm = signed radial distance from it
    rho = np.sqrt(_ellipsoid(X, Y, Z, (0, 0, 0), (ax, ay, az))) * (1 + 0.035 * smooth_noise(rng, shape, px * 5))
    norm = np.sqrt(X**2 + Y**2 + Z**2) + 1e-3
    surface = norm - norm / np.maximum(rho, 1e-3)
    rim = np.clip(atrophy * (1.2 + 2.0 * smooth_noise(rng, shape, px * 3)), 0.0, 4.0)  # CSF rim, 0 in places
    bone_mm = 6.0 + 1.5 * smooth_noise(rng, shape, px * 4) + 2.0 * (Y < -0.5 * ay)  # thicker occiput
    scalp_mm = float(rng.uniform(4.0, 8.0))

    # skull base: the floor of the cranial cavity (anterior fossa high, middle lower, posterior lowest),
    # petrous ridges between middle and posterior fossa, the sella / clivus in the midline
    X2, Y2 = X[..., 0], Y[..., 0]
    anterior = 1 / (1 + np.exp(-(Y2 - 0.42 * ay) / 4.0))
    posterior = 1 / (1 + np.exp((Y2 + 0.12 * ay) / 4.0))
    floor = -0.75 * az + anterior * 0.40 * az - posterior * 0.30 * az
    ridge = np.zeros_like(X2)
    for side in (-1.0, 1.0):
        d_ridge = _segment_distance(X2, Y2, (side * 0.95 * ax, -0.30 * ay), (side * 0.18 * ax, 0.02 * ay))
        ridge = np.maximum(ridge, np.exp(-((d_ridge / 6.0) ** 2)))
    floor = np.maximum(floor, -0.75 * az + ridge * 0.25 * az)
    sella = np.exp(-((X2 / 12.0) ** 2) - (Y2 / (0.15 * ay)) ** 2)
    floor = np.maximum(floor, -0.75 * az + sella * 0.25 * az)
    floor = floor[..., None] + 3.0 * smooth_noise(rng, shape, px * 3)

    cavity = (surface <= rim) & (Z > floor)
    outer = surface <= rim + bone_mm
    scalp_out = surface <= rim + bone_mm + scalp_mm
    # below the cranial floor: face (orbits with globes, nasal and sinus air) and neck, soft tissue
    face = (_ellipsoid(X, Y, Z, (0, 0.45 * ay, -0.95 * az), (0.8 * ax, 0.95 * ay, 0.55 * az)) <= 1) & (Z < floor)
    neck = (_ellipsoid(X, Y, Z, (0, -0.1 * ay, -1.1 * az), (0.8 * ax, 0.85 * ay, 0.6 * az)) <= 1) & (Z < floor)
    face |= neck
    head = scalp_out | face

    image = np.full(shape, -1000.0, dtype=np.float32)
    # scalp: galea and skin (~40 HU) with subcutaneous fat (-90 HU) between
    image[head] = 38.0
    fat = (surface > rim + bone_mm + 1.5) & (surface <= rim + bone_mm + scalp_mm - 1.5)
    image[fat & scalp_out] = -90.0
    # skull: dense tables and less dense diploe; everything below the floor inside the skull is skull base bone
    bone = (outer & ~cavity & (Z > floor - 12.0)) | (face & (Z > floor - 10.0) & (Z < floor))
    table = (surface <= rim + 1.5) | (surface > rim + bone_mm - 1.5)
    image[bone] = 650.0 + 250.0 * smooth_noise(rng, shape, px)[bone]
    image[bone & table] = 1400.0 + 200.0 * smooth_noise(rng, shape, px)[bone & table]
    # air cells: sphenoid / ethmoid (midline, anterior), mastoid (lateral, behind the petrous ridge)
    cells = smooth_noise(rng, shape, max(1, px // 2)) > 0.25
    sinus_zone = (np.abs(X) < 22) & (Y > 0.05 * ay) & (Y < 0.9 * ay) & (Z < floor - 2) & (Z > floor - 40)
    mastoid_zone = (np.abs(X) > 0.55 * ax) & (Y < -0.05 * ay) & (Y > -0.45 * ay) & (Z < floor + 5) & (Z > -az)
    image[bone & cells & (sinus_zone | mastoid_zone)] = -900.0
    for side in (-1.0, 1.0):  # orbits: globe (vitreous ~10 HU, dense lens) in orbital fat
        centre = (side * 32.0 * scale, 0.98 * ay + 6.0, -0.45 * az)
        orbit = _ellipsoid(X, Y, Z, centre, (19, 19, 15)) <= 1
        image[orbit & (Z < floor)] = -85.0
        globe = (_ellipsoid(X, Y, Z, centre, (12, 12, 12)) <= 1) & (Z < floor)
        image[globe] = 10.0
        image[globe & (_ellipsoid(X, Y, Z, (centre[0], centre[1] + 10, centre[2]), (4, 2, 4)) <= 1)] = 90.0
    nasal = (np.abs(X) < 10) & (Y > 0.75 * ay) & (Z < floor - 20) & face
    image[nasal] = -950.0

    # intracranial contents: CSF everywhere first, then brain
    image[cavity] = 6.0
    brain = cavity & (surface <= 0)
    gm_level, wm_level = float(rng.uniform(36.0, 42.0)), float(rng.uniform(25.0, 31.0))
    gyri = smooth_noise(rng, shape, max(1, px))
    cortex = surface > -(3.5 + 2.5 * gyri)  # grey-matter ribbon 1-6 mm deep, white-matter fingers into gyri
    image[brain] = wm_level
    image[brain & cortex] = gm_level
    for side in (-1.0, 1.0):  # deep grey nuclei: lentiform nuclei and thalami
        for centre, radii in (((side * 20.0, 8.0, 2.0), (7, 13, 10)), ((side * 10.0, -10.0, 4.0), (8, 10, 9))):
            image[brain & (_ellipsoid(X, Y, Z, np.array(centre) * scale, radii) <= 1)] = gm_level - 1.0
    # sulci: zero-crossings of a smooth field near the surface, wider with atrophy, CSF-filled
    folds = smooth_noise(rng, shape, max(1, px))
    sulci = brain & (np.abs(folds) < 0.015 + 0.025 * atrophy) & (surface > -14.0)
    # interhemispheric fissure (deep at the front and back, whole height above the ventricles)
    fissure_depth = np.where((np.abs(Y) > 0.35 * ay) | (Z > 0.35 * az), 60.0, 18.0)
    fissure = brain & (np.abs(X) < 0.8 + 0.8 * atrophy) & (surface > -fissure_depth)
    sulci |= fissure
    image[sulci] = 6.0
    # lateral ventricles (bodies diverging anteriorly, atrophy widens them), third ventricle slit
    ventricles = np.zeros(shape, dtype=bool)
    width = 3.0 + 3.5 * atrophy
    for side in (-1.0, 1.0):
        vx = side * (5.0 + 0.12 * np.clip(-Y, 0, None) + 1.5 * atrophy)
        ventricles |= ((X - vx) / width) ** 2 + ((Y + 6.0 * scale) / (30.0 * scale)) ** 2 + (
            (Z - 10.0 * scale) / (11.0 * scale)
        ) ** 2 <= 1
    ventricles |= (np.abs(X) < 1.0 + 0.8 * atrophy) & (np.abs(Y + 4.0) < 14.0) & (np.abs(Z + 2.0) < 9.0)
    ventricles &= brain
    image[ventricles] = 5.0
    # normal dense structures: falx, superior sagittal sinus, choroid plexus and pineal calcifications
    falx = cavity & (np.abs(X) < 0.6) & (surface > -fissure_depth + 4.0) & (Z > floor + 10.0)
    image[falx] = float(rng.uniform(55.0, 95.0))
    sinus = cavity & (np.abs(X) < 4.0 - 0.6 * (rim - surface)) & (surface > rim - 6.0) & (Y < 0.5 * ay)
    image[sinus] = float(rng.uniform(45.0, 60.0))
    for side in (-1.0, 1.0):
        if rng.random() < 0.6:
            centre = (side * (9.0 + atrophy) * scale, -26.0 * scale, 10.0 * scale)
            image[_ellipsoid(X, Y, Z, centre, [rng.uniform(1.5, 3.0)] * 3) <= 1] = float(rng.uniform(120, 300))
    if rng.random() < 0.5:
        pineal = _ellipsoid(X, Y, Z, (0.0, -20.0 * scale, 2.0 * scale), [rng.uniform(1.5, 2.5)] * 3) <= 1
        image[pineal] = float(rng.uniform(150, 400))
    if rng.random() < 0.3:  # an old infarct: a hypodense cortical wedge (not a bleed)
        centre = random_point(rng, brain & (surface > -20), X, Y, Z)
        image[brain & (_ellipsoid(X, Y, Z, centre, rng.uniform(6, 18, 3)) <= 1)] = float(rng.uniform(10, 20))
    # white-matter texture and beam hardening between the petrous ridges
    image[brain] += 2.0 * smooth_noise(rng, shape, max(1, px // 2))[brain]
    streak = np.exp(-((_segment_distance(X, Y, (-0.6 * ax, -0.2 * ay), (0.6 * ax, -0.2 * ay)) / 6.0) ** 2))
    streak *= (Z < floor + 25.0) & cavity
    image -= float(rng.uniform(4.0, 12.0)) * streak
    # head holder: a thin arc behind the head
    if rng.random() < 0.7:
        holder = np.abs(np.sqrt(_ellipsoid(Xs, Ys, Z, (0, 0, 0), (ax + 24, ay + 24, 1e9))) - 1) < 0.015
        image[holder & (Ys < -0.3 * ay) & ~head] = float(rng.uniform(150, 500))
    return HeadAnatomy(image, X, Y, Z, surface, rim, cavity, brain, ventricles, sulci)


def convexity_direction(rng: np.random.Generator) -> np.ndarray:
    """A random unit vector in the upper, lateral part of the head (where convexity bleeds sit)."""
    theta = rng.uniform(0, 2 * np.pi)
    elev = rng.uniform(-0.1, 0.6)
    v = np.array([np.cos(theta) * np.cos(elev), np.sin(theta) * np.cos(elev), np.sin(elev)])
    return v / np.linalg.norm(v)


def random_point(
    rng: np.random.Generator, where: np.ndarray, X: np.ndarray, Y: np.ndarray, Z: np.ndarray
) -> tuple[float, float, float]:
    """A random point (mm, head grid) among the voxels of ``where``; the origin when ``where`` is empty."""
    idx = np.flatnonzero(where)
    if len(idx) == 0:
        return (0.0, 0.0, 0.0)
    i = idx[rng.integers(len(idx))]
    return (float(X.flat[i]), float(Y.flat[i]), float(Z.flat[i]))

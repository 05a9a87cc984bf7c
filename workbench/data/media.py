"""Image and audio columns: a value is a file's path (or the file itself as a ``data:`` URI), read into a fixed list of
classical features — no pretrained weights.

Images (Pillow): turned upright by their EXIF orientation, cropped to content (a uniform border goes), then size,
colour (mean and spread per channel, a hue histogram, saturation, brightness), edges and a histogram of gradient
orientations (HOG's idea, over the whole picture) and of local binary patterns (texture: rotation-invariant uniform
LBP, 8 neighbours) on a 64 × 64 grey copy. Audio (WAV, FLAC, OGG, MP3; libsndfile): mixed to mono, resampled to
16 kHz, then duration, loudness (RMS), zero-crossing rate, spectral centroid, bandwidth and roll-off (mean and spread
over 32 ms frames) and 13 MFCCs (mean and spread).
"""
from __future__ import annotations

import base64
import binascii
import io
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image, ImageChops, ImageOps, UnidentifiedImageError
from scipy.fft import dct
from scipy.signal import resample_poly

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
MAX_BYTES = 20 * 1024 * 1024  # one image or sound, as a file or decoded from a data: URI
MAX_PIXELS = 40_000_000  # Pillow's decompression-bomb guard, made an error
SIDE, HUES, ORIENTATIONS, LBP_BINS = 64, 8, 9, 10
RATE, FRAME, HOP, MELS, MFCCS = 16_000, 512, 256, 40, 13
MIN_RATE, MAX_RATE, MAX_SECONDS = 1_000, 384_000, 600
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

IMAGE_FEATURES = (["width", "height", "aspect"] + [f"{c}_{s}" for c in "rgb" for s in ("mean", "std")]
                  + [f"hue_{i}" for i in range(HUES)] + ["saturation", "brightness", "contrast", "edges"]
                  + [f"gradient_{i}" for i in range(ORIENTATIONS)] + [f"texture_{i}" for i in range(LBP_BINS)])
_SPECTRAL = ["rms", "zcr", "centroid", "bandwidth", "rolloff"]
AUDIO_FEATURES = (["duration"] + [f"{f}_{s}" for f in _SPECTRAL for s in ("mean", "std")]
                  + [f"mfcc{i}_{s}" for s in ("mean", "std") for i in range(MFCCS)])
KINDS = {"image": (IMAGE_SUFFIXES, IMAGE_FEATURES), "audio": (AUDIO_SUFFIXES, AUDIO_FEATURES)}


def media_kind(texts) -> str | None:
    """"image" or "audio" when nearly every value of a text column names such a file (or is a data: URI of one)."""
    low = texts.str.lower()
    for kind, (suffixes, _) in KINDS.items():
        if (low.str.endswith(suffixes) | low.str.startswith(f"data:{kind}/")).mean() >= 0.95:
            return kind
    return None


class MediaReader:
    """One column's reader: a value (a path, or a ``data:`` URI) → its features; ValueError saying what is wrong.

    ``root``: a relative path is read from there, and no path may leave it (the service's allowed folder); None reads
    any path (batch prediction of the user's own files); "" takes no path at all, only data: URIs."""

    wanted = "a file's path or a data: URI"

    def __init__(self, kind: str, root: str | Path | None = None, fill: list[float] | None = None):
        self.kind, self.features = kind, KINDS[kind][1]
        self.width = len(self.features)
        self.absent = tuple(fill) if fill is not None else (math.nan,) * self.width  # a missing file's features
        self.root = None if root is None else (Path(root).resolve() if root != "" else "")

    def __call__(self, value: str) -> tuple[float, ...]:
        data = self.raw(value)
        try:
            return image_features(data) if self.kind == "image" else audio_features(data)
        except (UnidentifiedImageError, Image.DecompressionBombError, sf.SoundFileError, EOFError, OSError,
                ValueError) as exc:
            raise ValueError(f"is not a readable {self.kind} ({type(exc).__name__}: {str(exc)[:80]})") from None

    def lenient(self, value: str | None, absent: tuple | None = None) -> tuple[float, ...]:
        """Cleaning's reading: a missing or unreadable value has the features ``absent`` (default: ``self.absent``)."""
        if value is not None:
            try:
                return self(value)
            except ValueError:
                pass
        return self.absent if absent is None else absent

    def raw(self, value: str) -> bytes:
        """The file's bytes a value names or carries, within the size limit; ValueError saying what is wrong."""
        if value.startswith("data:"):
            head, _, payload = value.partition(",")
            if not head.endswith(";base64") or not head[5:].startswith(f"{self.kind}/"):
                raise ValueError(f"is a data: URI that is not a base64 {self.kind} (data:{self.kind}/…;base64,…)")
            if len(payload) > MAX_BYTES * 4 // 3 + 4:
                raise ValueError(f"is a {self.kind} of more than {MAX_BYTES // 2**20} MB")
            try:
                return base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("is a data: URI whose base64 is broken") from None
        if self.root == "":
            raise ValueError(f"is a path; this service takes {self.kind}s only as data: URIs (or start it with "
                             "--media-root FOLDER to read files from there)")
        try:
            path = Path(value)
            if self.root is not None:
                path = (self.root / path).resolve()
                if not path.is_relative_to(self.root):
                    raise ValueError(f"is a path outside the folder this service reads {self.kind}s from")
            if path.suffix.lower() not in KINDS[self.kind][0]:
                raise ValueError(f"is not a {'/'.join(KINDS[self.kind][0])} file ({path.name[:60]})")
            if path.stat().st_size > MAX_BYTES:
                raise ValueError(f"is a {self.kind} of more than {MAX_BYTES // 2**20} MB")
            return path.read_bytes()
        except FileNotFoundError:
            raise ValueError(f"names a file that does not exist ({Path(value).name[:60]})") from None
        except (OSError, RuntimeError) as exc:  # a folder, no permission, a name too long, a symlink loop
            raise ValueError(f"cannot be read ({type(exc).__name__})") from None


def embedded(df, kinds: dict):
    """``df`` with the files its image and audio columns (``{column: kind}``) name put in as data: URIs: rows that
    mean the same wherever they travel (a package's reference rows). A value that cannot be read stays as it is."""
    out = df.copy()
    for col, kind in kinds.items():
        if col in out.columns:
            out[col] = [_data_uri(v, kind) for v in out[col]]
    return out


def _data_uri(value, kind: str):
    if not isinstance(value, str) or value.startswith("data:"):
        return value
    try:
        data = MediaReader(kind).raw(value)
    except ValueError:
        return value
    subtype = {".jpg": "jpeg", ".tif": "tiff"}.get(Path(value).suffix.lower(), Path(value).suffix.lower().lstrip("."))
    return f"data:{kind}/{subtype};base64,{base64.b64encode(data).decode()}"


def image_features(data: bytes) -> tuple[float, ...]:
    """``IMAGE_FEATURES`` of an image file's bytes."""
    with Image.open(io.BytesIO(data)) as im:
        if im.size[0] * im.size[1] > MAX_PIXELS:  # before decoding: Pillow itself only warns below twice its limit
            raise ValueError(f"{im.size[0]} × {im.size[1]} pixels; at most {MAX_PIXELS:,}")
        im = ImageOps.exif_transpose(im).convert("RGB")
    border = Image.new("RGB", im.size, im.getpixel((0, 0)))
    box = ImageChops.difference(im, border).getbbox()
    if box:
        im = im.crop(box)
    w, h = im.size
    rgb = np.asarray(im.resize((SIDE, SIDE), Image.Resampling.BILINEAR), dtype=np.float64) / 255.0
    hsv = np.asarray(im.resize((SIDE, SIDE), Image.Resampling.BILINEAR).convert("HSV"), dtype=np.float64) / 255.0
    colour = [v for c in range(3) for v in (rgb[..., c].mean(), rgb[..., c].std())]
    hues = np.bincount(np.minimum((hsv[..., 0] * HUES).astype(int), HUES - 1).ravel(), weights=hsv[..., 1].ravel(),
                       minlength=HUES)
    hues = hues / hues.sum() if hues.sum() > 0 else hues
    grey = rgb @ np.array([0.299, 0.587, 0.114])
    gy, gx = np.gradient(grey)
    magnitude = np.hypot(gx, gy)
    angle = np.mod(np.arctan2(gy, gx), np.pi)  # unsigned orientations, as HOG takes them
    bins = np.minimum((angle / np.pi * ORIENTATIONS).astype(int), ORIENTATIONS - 1)
    orient = np.bincount(bins.ravel(), weights=magnitude.ravel(), minlength=ORIENTATIONS)
    orient = orient / orient.sum() if orient.sum() > 0 else orient
    return (float(w), float(h), w / h, *colour, *hues.tolist(), float(hsv[..., 1].mean()), float(hsv[..., 2].mean()),
            float(grey.std()), float(magnitude.mean()), *orient.tolist(), *_texture(grey).tolist())


def _texture(grey: np.ndarray) -> np.ndarray:
    """Shares of rotation-invariant uniform local binary patterns: for each inner pixel, which of its 8 neighbours are
    at least as bright; a pattern with at most two changes around the circle is binned by its count of brighter
    neighbours (0–8: spots, edges, corners, flat), every other pattern in the last bin (noise)."""
    centre = grey[1:-1, 1:-1]
    h, w = grey.shape
    ring = [(0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0)]  # the neighbours in order around
    bits = np.stack([grey[dy:h - 2 + dy, dx:w - 2 + dx] >= centre for dy, dx in ring]).astype(np.int8)
    changes = np.abs(np.diff(np.concatenate([bits, bits[:1]]), axis=0)).sum(axis=0)
    codes = np.where(changes <= 2, bits.sum(axis=0), LBP_BINS - 1)
    return np.bincount(codes.ravel(), minlength=LBP_BINS) / codes.size


def audio_features(data: bytes) -> tuple[float, ...]:
    """``AUDIO_FEATURES`` of a sound file's bytes: WAV, FLAC, OGG or MP3 (libsndfile, through soundfile), any sample
    format, rate and channel count."""
    with sf.SoundFile(io.BytesIO(data)) as f:
        rate, n = f.samplerate, f.frames
        if not MIN_RATE <= rate <= MAX_RATE:  # resampling cost grows with the rate's ratio to 16 kHz
            raise ValueError(f"a sample rate of {rate} Hz; read are {MIN_RATE:,} to {MAX_RATE:,} Hz")
        if n > MAX_SECONDS * rate:
            raise ValueError(f"{n / rate:.0f} s of sound; at most {MAX_SECONDS} s")
        x = f.read(dtype="float64", always_2d=True).mean(axis=1)
    if rate != RATE:
        g = math.gcd(rate, RATE)
        x = resample_poly(x, RATE // g, rate // g)
    duration = len(x) / RATE
    if len(x) < FRAME:
        x = np.pad(x, (0, FRAME - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, FRAME)[::HOP] * np.hanning(FRAME)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(FRAME, 1 / RATE)
    total = power.sum(axis=1) + 1e-12
    centroid = power @ freqs / total
    bandwidth = np.sqrt((power * (freqs[None, :] - centroid[:, None]) ** 2).sum(axis=1) / total)
    rolloff = freqs[np.minimum((np.cumsum(power, axis=1) < 0.85 * total[:, None]).sum(axis=1), len(freqs) - 1)]
    rms = np.sqrt((frames ** 2).mean(axis=1))
    zcr = (np.abs(np.diff(np.sign(frames), axis=1)) > 0).mean(axis=1)
    mfcc = dct(np.log(power @ _mel_bank().T + 1e-10), type=2, norm="ortho", axis=1)[:, :MFCCS]
    spectral = [v for f in (rms, zcr, centroid, bandwidth, rolloff) for v in (f.mean(), f.std())]
    return (duration, *map(float, spectral), *mfcc.mean(axis=0).tolist(), *mfcc.std(axis=0).tolist())


@lru_cache(maxsize=1)
def _mel_bank() -> np.ndarray:
    """MELS triangular filters on the mel scale from 0 Hz to half the rate, over the FFT's bins."""
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    hz = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    edges = hz(np.linspace(mel(0), mel(RATE / 2), MELS + 2))
    freqs = np.fft.rfftfreq(FRAME, 1 / RATE)
    bank = np.zeros((MELS, len(freqs)))
    for i in range(MELS):
        lo, mid, hi = edges[i:i + 3]
        bank[i] = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0, None)
    return bank

"""Image and audio columns: a folder of class folders becomes a table, the files become classical features, and the
same numbers come out of training, batch prediction and the service (a data: URI, or a path in its media folder)."""
import base64
import io
import wave

import httpx
import numpy as np
import pandas as pd
import pytest
import soundfile
from PIL import Image, ImageDraw

from servers import Server
from workbench.auto import predict_file
from workbench.data import clean, load, profile
from workbench.data.media import AUDIO_FEATURES, MediaReader, audio_features
from workbench.errors import DataError
from workbench.registry.package import load_package, package_result


def _picture(path, shape: str, rng) -> None:
    """A red disc or a blue square somewhere on a noisy background, sometimes turned by its EXIF orientation."""
    size = int(rng.integers(80, 160))
    im = Image.fromarray(rng.integers(180, 255, (size, size + 20, 3), dtype=np.uint8))
    d = ImageDraw.Draw(im)
    r, x, y = int(rng.integers(15, 30)), int(rng.integers(30, size - 30)), int(rng.integers(30, size - 30))
    if shape == "disc":
        d.ellipse((x - r, y - r, x + r, y + r), fill=(int(rng.integers(170, 230)), 30, 30))
    else:
        d.rectangle((x - r, y - r, x + r, y + r), fill=(30, 30, int(rng.integers(170, 230))))
    exif = Image.Exif()
    exif[0x0112] = int(rng.choice([1, 6]))  # upright, or stored turned a quarter
    im.save(path, exif=exif) if path.suffix == ".jpg" else im.save(path)


def _tone(path, hz: float, rng, rate: int = 22_050, seconds: float = 0.4) -> None:
    """A tone in noise: 16-bit WAV written by the standard library, or FLAC by libsndfile."""
    t = np.arange(int(rate * seconds)) / rate
    x = np.clip(0.4 * np.sin(2 * np.pi * hz * t) + 0.05 * rng.normal(size=len(t)), -1, 1)
    if path.suffix == ".flac":
        soundfile.write(path, x, rate, subtype="PCM_24")
        return
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes((x * 32767).astype("<i2").tobytes())


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    root = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(0)
    for shape in ("disc", "square"):
        (root / shape).mkdir()
        for i in range(60):
            _picture(root / shape / f"{i}.{'jpg' if i % 2 else 'png'}", shape, rng)
    return root


@pytest.fixture(scope="module")
def image_package(pictures, tmp_path_factory):
    from workbench import train

    df = load(pictures)
    held = df.index % 4 == 0  # a quarter held out, both shapes and both file types in it
    r = train(df[~held], "label", test=df[held], models=["lightgbm"], folds=3, log=False, progress=False,
              time_budget=60)
    assert r.leaderboard.best.cv["roc_auc"] >= 0.95 and r.test_metrics["accuracy"] >= 0.9, r.test_metrics  # chance: 0.5
    return package_result(r, tmp_path_factory.mktemp("image") / "shapes", name="shapes")


def test_a_folder_of_class_folders_is_a_table_of_images(pictures):
    df = load(pictures)
    assert list(df.columns) == ["image", "label"] and len(df) == 120 and set(df["label"]) == {"disc", "square"}
    assert profile(df, "label").to_frame().set_index("column").loc["image", "type"].startswith("image")
    c = clean(df, "label")
    assert c.cleaner.plan_["image"]["kind"] == "image" and "image_hue_0" in c.X.columns
    assert c.X.filter(like="image_").notna().all().all()


def test_batch_prediction_reads_relative_paths_and_names_unreadable_files(image_package, pictures, tmp_path):
    rows = pd.DataFrame({"image": ["disc/0.png", "square/1.jpg", "disc/3.jpg", "missing.png"]})
    table = pictures / "new.csv"
    rows.to_csv(table, index=False)
    with pytest.raises(DataError, match=r"row 3: 'image' names a file that does not exist"):
        predict_file(image_package, str(table), tmp_path / "p.csv")
    pred, refused = predict_file(image_package, str(table), tmp_path / "p.csv", on_bad_rows="skip")
    assert pred["prediction"].tolist() == ["disc", "square", "disc"] and refused["row"].tolist() == [3]
    table.unlink()


def test_the_service_takes_a_data_uri_or_a_path_in_its_media_folder(image_package, pictures, tmp_path):
    pkg = load_package(image_package)
    file = pictures / "square" / "3.jpg"
    uri = "data:image/jpeg;base64," + base64.b64encode(file.read_bytes()).decode()
    expected = pkg.model.predict_proba(pd.DataFrame({"image": [str(file)]}))[0]
    plain = Server("--package", image_package)
    try:
        r = httpx.post(f"{plain.url}/v1/models/shapes/predict", json={"image": uri}, timeout=30)
        assert r.status_code == 200, r.text
        assert np.allclose(list(r.json()["predictions"][0]["probabilities"].values()), expected, atol=1e-12)
        path = httpx.post(f"{plain.url}/v1/models/shapes/predict", json={"image": str(file)}, timeout=30)
        assert path.status_code == 422 and "data: URI" in path.text  # no folder given: no file is read
        broken = httpx.post(f"{plain.url}/v1/models/shapes/predict", json={"image": "data:image/png;base64,AAAA"})
        assert broken.status_code == 422 and "not a readable image" in broken.text
    finally:
        plain.stop()
    served = Server("--package", image_package, "--media-root", pictures)
    try:
        ok = httpx.post(f"{served.url}/v1/models/shapes/predict", json={"image": "square/3.jpg"}, timeout=30)
        assert ok.status_code == 200 and ok.json()["predictions"][0]["prediction"] == "square"
        out = httpx.post(f"{served.url}/v1/models/shapes/predict", json={"image": "../../../etc/passwd.png"})
        assert out.status_code == 422 and "outside the folder" in out.text
    finally:
        served.stop()


def test_sounds_are_told_apart_and_served_as_predicted(tmp_path):
    rng = np.random.default_rng(1)
    for pitch, (lo, hi) in {"low": (150, 400), "high": (1500, 3000)}.items():
        (tmp_path / pitch).mkdir()
        for i in range(40):
            _tone(tmp_path / pitch / f"{i}.{'flac' if i % 2 else 'wav'}", rng.uniform(lo, hi), rng,
                  rate=[22_050, 16_000, 44_100][i % 3])
    df = load(tmp_path)
    assert list(df.columns) == ["audio", "label"] and df["audio"].str.endswith(".flac").sum() == 40
    c = clean(df, "label")
    centroid = c.X["audio_centroid_mean"].groupby(c.y.to_numpy()).median()
    assert centroid["high"] > 3 * centroid["low"]
    from workbench import train

    held = df.index % 4 == 0
    r = train(df[~held], "label", test=df[held], models=["lightgbm", "linear"], folds=3, log=False, progress=False,
              time_budget=60)
    assert r.leaderboard.best.cv["roc_auc"] >= 0.95 and r.test_metrics["accuracy"] >= 0.9, r.test_metrics
    pkg_dir = package_result(r, tmp_path / "pkg" / "tones", name="tones")
    pkg = load_package(pkg_dir)
    file = next((tmp_path / "high").glob("*.flac"))
    expected = pkg.model.predict_proba(pd.DataFrame({"audio": [str(file)]}))[0]
    server = Server("--package", pkg_dir)
    try:
        uri = "data:audio/flac;base64," + base64.b64encode(file.read_bytes()).decode()
        got = httpx.post(f"{server.url}/v1/models/tones/predict", json={"audio": uri}, timeout=30)
        assert got.status_code == 200, got.text
        assert got.json()["predictions"][0]["prediction"] == "high"
        assert np.allclose(list(got.json()["predictions"][0]["probabilities"].values()), expected, atol=1e-12)
    finally:
        server.stop()


def test_a_pure_tone_has_its_pitch_as_spectral_centroid(tmp_path):
    _tone(tmp_path / "a.wav", 440, np.random.default_rng(2), seconds=1.0)
    features = dict(zip(AUDIO_FEATURES, audio_features((tmp_path / "a.wav").read_bytes())))
    assert abs(features["duration"] - 1.0) < 1e-3 and 400 < features["centroid_mean"] < 600
    with pytest.raises(ValueError, match="not a readable audio"):
        MediaReader("audio", root=tmp_path)("data:audio/wav;base64," + base64.b64encode(b"RIFF0000WAVE").decode())


def test_a_package_carries_its_reference_images_and_bad_files_are_named(image_package, pictures, tmp_path):
    import json
    import shutil

    reference = json.loads((image_package / "reference.json").read_text())["inputs"]
    assert all(v.startswith("data:image/") for v in reference["image"]["values"])
    moved = tmp_path / "elsewhere"
    shutil.copytree(image_package, moved)
    hidden = pictures.with_name(pictures.name + "-away")
    pictures.rename(hidden)  # the training files gone: the package still checks its reference predictions
    try:
        assert load_package(moved).check_reference() <= 1e-9
    finally:
        hidden.rename(pictures)
    reader = MediaReader("image", root=pictures)
    for bad, says in [("disc/0.png/x.png", "cannot be read"), ("x" * 300 + ".png", "cannot be read"),
                      ("disc", "not a .png"), ("data:image/png;base64,!!", "base64")]:
        with pytest.raises(ValueError, match=says):
            reader(bad)


def test_a_sound_with_an_absurd_sample_rate_is_refused_before_any_work(tmp_path):
    b = io.BytesIO()
    with wave.open(b, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(9_999_991)
        w.writeframes(np.zeros(1000, dtype="<i2").tobytes())
    with pytest.raises(ValueError, match="sample rate"):
        audio_features(b.getvalue())

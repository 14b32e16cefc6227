"""load_audio: decoding, mono mix-down, exact-ratio resampling (checked against the analytic sine), errors."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from cache.errors import UserError
from data_fixtures import write_sine
from stages.data.audio import load_audio, resample


def dominant_frequency(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)])


@pytest.mark.parametrize("src, dst", [(44100, 16000), (48000, 16000), (8000, 48000), (22050, 32000)])
def test_resampling_keeps_frequency_and_exact_length(tmp_path, src, dst):
    path = write_sine(tmp_path / "s.wav", freq=440.0, rate=src, seconds=1.0, subtype="FLOAT")
    y = load_audio(path, dst)
    assert y.dtype == np.float32 and y.ndim == 1
    assert len(y) == dst  # 1 s at any rate: the rational factor is exact
    assert abs(dominant_frequency(y, dst) - 440.0) <= 1.0  # 1 Hz FFT bins
    # Independent reference: the analytic sine at the new rate (float64), away from the filter's edge effects.
    t = np.arange(dst) / dst
    ref = 0.5 * np.sin(2 * np.pi * 440.0 * t)
    core = slice(dst // 10, -dst // 10)
    assert np.max(np.abs(y[core] - ref[core])) < 2e-3


def test_length_ratio_is_exact_for_partial_seconds(tmp_path):
    path = write_sine(tmp_path / "s.wav", rate=44100, seconds=0.5)  # 22050 samples
    assert len(load_audio(path, 16000)) == 8000  # 22050 * 160 / 441


def test_same_rate_is_bit_exact_and_int16_scaled(tmp_path):
    path = write_sine(tmp_path / "s.wav", rate=16000, seconds=0.1, subtype="PCM_16")
    raw, _ = sf.read(str(path), dtype="int16")
    y = load_audio(path, 16000)
    np.testing.assert_array_equal(y, raw.astype(np.float32) / 32768.0)


def test_stereo_is_averaged_to_mono(tmp_path):
    path = write_sine(tmp_path / "st.flac", rate=16000, seconds=0.2, channels=2)  # left: sine, right: silence
    y = load_audio(path, 16000)
    left, _ = sf.read(str(path), dtype="float32")
    np.testing.assert_allclose(y, left[:, 0] / 2, atol=1e-7)


def test_ogg_and_max_seconds(tmp_path):
    path = write_sine(tmp_path / "s.ogg", rate=16000, seconds=1.0, subtype="VORBIS")
    y = load_audio(path, 16000, max_seconds=0.25)
    assert len(y) == 4000


def test_resample_rejects_bad_rates():
    with pytest.raises(UserError, match="positive"):
        resample(np.zeros(10, np.float32), 0, 16000)


@pytest.mark.parametrize("make, needle", [
    (lambda p: None, "not found"),
    (lambda p: p.write_bytes(b"this is not audio at all"), "cannot be decoded"),
    (lambda p: sf.write(str(p), np.zeros(0, np.float32), 16000), "no samples"),
])
def test_bad_files_name_the_path(tmp_path, make, needle):
    p = tmp_path / "clip.wav"
    make(p)
    with pytest.raises(UserError) as e:
        load_audio(p, 16000)
    assert str(p) in str(e.value) and needle in str(e.value) and "\n" not in str(e.value)


def test_bad_sample_rate_is_a_user_error(tmp_path):
    path = write_sine(tmp_path / "s.wav")
    with pytest.raises(UserError, match="sample rate"):
        load_audio(path, 0)

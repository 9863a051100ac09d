"""The built-in audio demo: spoken words synthesised with espeak-ng, split by voice.

Every word is spoken by many voices (an English accent + an espeak voice
variant: 36 training voices, 3 validation and 4 test voices) at random
speeds and pitches and resampled to 16 kHz. The voices of
the validation and test splits use variants that never occur in training, so
the accuracy measures generalisation to unseen voices. Needs the ``espeak-ng``
program (Debian/Ubuntu: ``apt install espeak-ng``).
"""
from __future__ import annotations

import json
import logging
import random
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional, Union

from ..._extras import require
from .io import load_audio

__all__ = ["WORDS", "TRAIN_VOICES", "VAL_VOICES", "TEST_VOICES", "synthesize_word", "build_spoken_words"]

logger = logging.getLogger(__name__)

#: The Speech Commands core words.
WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
_ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc")
#: espeak-ng voice variants used only for training (disjoint from the val/test variants below)
_EXTRA_TRAIN_VARIANTS = ("klatt4", "klatt5", "klatt6", "Alex", "Andy", "Annie", "adam", "aunty", "belinda",
                         "benjamin", "boris", "caleb", "david", "ed", "edward", "Gene", "iven", "Jacky", "john",
                         "linda", "max", "Michael", "Mike", "paul")
# voice = accent + variant; the variants of the val and test voices never occur in training
TRAIN_VOICES = ("en+m1", "en-us+m2", "en-gb-scotland+m3", "en-gb-x-rp+f1", "en-029+f2", "en-gb-x-gbclan+klatt",
                "en-gb-x-gbcwmd+m7", "en-us-nyc+f5", "en+m6", "en-us+f1", "en-gb-x-rp+m2", "en-029+m3") + tuple(
    f"{_ACCENTS[i % len(_ACCENTS)]}+{v}" for i, v in enumerate(_EXTRA_TRAIN_VARIANTS))
VAL_VOICES = ("en-us+m4", "en-gb-scotland+f3", "en+klatt3")
TEST_VOICES = ("en-gb-x-rp+f4", "en-us-nyc+m8", "en-029+klatt2", "en+m5")


def _espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise FileNotFoundError("espeak-ng not found: the audio demo synthesises its words with it "
                                "(Debian/Ubuntu: apt install espeak-ng), or pass --data")
    return exe


def synthesize_word(word: str, voice: str, speed: int, pitch: int, path: Union[str, Path],
                    sample_rate: int = 16000) -> Path:
    """Speak ``word`` with espeak-ng (``-v voice -s speed -p pitch``) into a WAV file at ``sample_rate``."""
    sf = require("soundfile", "audio", "writing audio files")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        result = subprocess.run([_espeak(), "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(raw), word],
                                capture_output=True, text=True)
        if result.returncode != 0 or not raw.is_file():
            raise ValueError(f"espeak-ng failed for voice {voice!r}: {result.stderr.strip()}")
        wave = load_audio(raw, sample_rate)  # espeak speaks at 22.05 kHz
    sf.write(str(path), wave.numpy(), sample_rate)
    return path


def build_spoken_words(root: Union[str, Path], words: int = len(WORDS), repeats: int = 3, seed: int = 0,
                       sample_rate: int = 16000, workers: int = 2, train_voices: Optional[int] = None) -> Path:
    """Write ``root/{train,val,test}/<word>/<voice>-<k>.wav`` (a class-folder layout) and return ``root``.

    ``words`` first words of :data:`WORDS`, ``repeats`` renditions per word and
    voice, the first ``train_voices`` of :data:`TRAIN_VOICES` (default all) for
    training; validation and test always use all of :data:`VAL_VOICES` /
    :data:`TEST_VOICES`. Each clip's speed and pitch depend only on ``seed``,
    the voice, the word and the rendition, so a clip is the same whatever else
    is built. An existing set made with the same parameters is reused.
    """
    if not 2 <= words <= len(WORDS):
        raise ValueError(f"words must be in [2, {len(WORDS)}], got {words}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    n_train = len(TRAIN_VOICES) if train_voices is None else int(train_voices)
    if not 1 <= n_train <= len(TRAIN_VOICES):
        raise ValueError(f"train_voices must be in [1, {len(TRAIN_VOICES)}], got {train_voices}")
    root = Path(root)
    params = {"words": list(WORDS[:words]), "repeats": repeats, "seed": seed, "sample_rate": sample_rate,
              "voices": [list(TRAIN_VOICES[:n_train]), list(VAL_VOICES), list(TEST_VOICES)], "draw": "per-clip"}
    marker = root / "spoken_words.json"
    if marker.is_file() and json.loads(marker.read_text()) == params:
        return root
    _espeak()
    for split in ("train", "val", "test"):
        shutil.rmtree(root / split, ignore_errors=True)
    jobs = []
    for split, voices in (("train", TRAIN_VOICES[:n_train]), ("val", VAL_VOICES), ("test", TEST_VOICES)):
        for voice in voices:
            for word in WORDS[:words]:
                for k in range(repeats):
                    rng = random.Random(f"{seed}/{voice}/{word}/{k}")
                    speed, pitch = rng.randint(120, 200), rng.randint(25, 75)
                    path = root / split / word / f"{voice.replace('+', '_')}-{k}.wav"
                    jobs.append((word, voice, speed, pitch, path, sample_rate))
    logger.info("synthesising %d spoken-word clips with espeak-ng into %s", len(jobs), root)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(lambda job: synthesize_word(*job), jobs))
    marker.write_text(json.dumps(params))
    return root

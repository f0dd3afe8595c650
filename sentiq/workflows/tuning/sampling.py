"""The sampling search: every temperature x top-k cell classifies the same tuning texts, the prompt
encoded once for all cells."""

from __future__ import annotations

import pandas as pd

from sentiq.errors import OptionError
from sentiq.learn_settings import TuneSettings
from sentiq.predictions import INVALID
from sentiq.progress import StartTask
from sentiq.searches import TuneResult
from sentiq.settings import MethodConfig, ModelSettings
from sentiq.workflows.tuning.choices import save_search, tuning_folder
from sentiq.workflows.tuning.splits import default_prompt, tuning_split


def tune_sampling(model: ModelSettings, settings: TuneSettings, start_task: StartTask) -> TuneResult:
    """Every cell classifies the same tuning texts; the prompt is encoded once for all cells.
    Chosen by macro-F1, then fewer invalid answers, then accuracy."""
    from sentiq.core.engine import load_engine
    from sentiq.core.models import home_relative
    from sentiq.methods.grids import predict_grid
    from sentiq.methods.plan import plan_method
    from sentiq.methods.prompts import load_prompts
    from sentiq.methods.runner import make_runner
    from sentiq.workflows.metrics import quality

    prompts = load_prompts(settings.prompt) if settings.prompt else []
    if len(prompts) > 1:
        raise OptionError("tune-sampling searches with one prompt: give one name or file to --prompt")
    drawn = tuning_split(settings.data, prompts, settings.n, settings.seed, settings.sample)
    prompt = settings.prompt or default_prompt(drawn.labels)
    prompts = prompts or load_prompts(prompt)
    split = drawn.texts
    engine = load_engine(model)
    cells = [(t, k) for t in settings.temperatures for k in settings.top_ks]
    configs = [
        MethodConfig(
            method="sampling",
            prompt=prompt,
            temperature=t,
            top_k=k,
            samples=settings.samples,
            seed=settings.seed,
        )
        for t, k in cells
    ]
    runner = make_runner(engine, plan_method(configs[0], prompts))
    advance = start_task(f"tuning {len(cells)} cells", len(split))
    predictions = predict_grid(runner, list(split["text"]), configs, advance)
    gold = list(split["label"])
    rows = []
    for (t, k), preds in zip(cells, predictions):
        labels = [p.label for p in preds]
        q = quality(gold, labels, drawn.labels)
        rows.append(
            dict(temperature=t, top_k=k, macro_f1=q.macro_f1, accuracy=q.accuracy, invalid=labels.count(INVALID))
        )
    grid = pd.DataFrame(rows)
    ranked = grid.sort_values(["macro_f1", "invalid", "accuracy"], ascending=[False, True, False], kind="stable")
    top = ranked.iloc[0]
    best = {
        "model": home_relative(model.source.ref),
        "temperature": float(top["temperature"]),
        "top_k": int(top["top_k"]),
        "samples": settings.samples,
        "prompt": prompt,
        "labels": list(drawn.labels),
        "macro_f1": float(top["macro_f1"]),
        "accuracy": float(top["accuracy"]),
        "invalid": int(top["invalid"]),
        "n": len(split),
        "seed": settings.seed,
        "split": drawn.record,
    }
    folder = tuning_folder(settings.output_dir, model.source, "sampling", drawn.labels)
    table = grid.pivot(index="temperature", columns="top_k", values="macro_f1").sort_index()
    table = table[sorted(table.columns)]
    cell = (best["temperature"], best["top_k"])
    title = f"{model.source.label} · sampling macro-F1 · n={best['n']}"
    save_search(folder, split, grid, best, table, cell, ("top-k", "temperature", "macro-F1"), title)
    return TuneResult(grid, best, folder)

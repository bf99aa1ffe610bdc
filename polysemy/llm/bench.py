"""``polysemy llm-bench``: GBA against the standard SAEs on one real model's activations.

Pipeline: load the model (packaged SmolLM2 or a local path) -> cut the corpus into token contexts ->
extract the site's activations into a training store and a held-out store (same normaliser) ->
train every method and setting for each seed on the SAME stored activations (``polysemy.sae.train``;
seed s sets both the initialisation and the shuffling of the stream) -> on held-out tokens measure
nmse, explained variance, L0, alive/dead fractions, and CE-loss recovered by splicing the SAE into
the model -> cross-seed consistency -> figures, the snippet page, ``results.json``.

Every trained SAE (one per setting and seed), lr trial and CE splice is a unit of the experiment store
``<out>/saes`` (:class:`LLMBenchSpec`, run by ``polysemy.experiments.runner``); a trained SAE's checkpoint is
saved beside its row, so a killed run, rerun with the same ``out`` and settings, loads its finished units
instead of training them again; the aggregates read the models back from the store.

CPU by default; ``device="cuda"`` runs the same code on a GPU: the language model under bf16 autocast
when ``dtype="bfloat16"``, the SAEs in float32 (TF32 matmuls).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..errors import ConfigError, require
from ..experiments.runner import run_sweep
from ..experiments.spec import Unit, unit_id_for
from ..experiments.store import ResultStore, check_store_dir, flatten_row
from ..io import to_jsonable, write_json_atomic, write_text_atomic
from ..sae import TrainConfig, train, train_stacked
from ..sae.checkpoint import is_checkpoint, load_checkpoint, save_checkpoint
from ..sae.registry import get_method
from .config import LLMBenchConfig
from .evaluate import consistency, evaluate_sae, group_frequencies, random_consistency
from .extract import extract_activations
from .figures import figures_from_report
from .model import check_device, load_model
from .preflight import preflight
from .snippets import choose_features, snippets_page
from .splice import CEEvaluator
from .text import token_contexts

ARMS = ("main", "l0-matched", "architecture", "gba-frontier")


def _store_key(cfg: LLMBenchConfig, model_name: str) -> str:
    """The activation stores' folder name: a hash of everything the stored activations depend on (the
    same list, in the same order, as before the config was split into sections, so old stores are found)."""
    src, budget = cfg.source, cfg.budget
    ident = [model_name, src.text, list(src.extra_texts), src.layer, src.site, src.dtype, src.store_dtype,
             src.context_length, budget.tokens, budget.eval_tokens, budget.ce_tokens, budget.text_seed,
             cfg.normalize.to_dict()]
    return f"L{src.layer}-{src.site}-" + hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:10]


def _data_key(cfg: LLMBenchConfig, model_name: str, store_key: str) -> dict:
    """What every unit's result depends on besides its training config: the activations (the store key),
    how the stream is cut and shuffled, and where it trains (part of every unit's content-addressed key)."""
    src = cfg.source
    return {"activations": store_key, "model": model_name, "contexts_per_shard": src.contexts_per_shard,
            "batch_contexts": src.batch_contexts, "shuffle_tokens": src.shuffle_tokens, "device": src.device}


def _log(msg: str) -> None:
    print(f"polysemy llm-bench: {msg}", file=sys.stderr, flush=True)


def _mean(values) -> float:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def _sem(values) -> float:
    """Standard error of the mean over seeds (nan with fewer than two)."""
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) >= 2 else float("nan")


ROW_KEYS = ("nmse", "explained_variance", "explained_variance_raw", "l0", "l0_over_width", "alive_fraction",
            "dead_fraction", "ce_sae", "ce_recovered", "delta_ce", "kl", "kl_score", "seconds", "samples_per_second")


# -- the experiment store: one unit per trained SAE (setting, seed), per lr trial, per CE splice -------------
SAE_UNIT = "llm-sae"          # one trained SAE: its checkpoint beside its row (per-seed held-out metrics)
LR_UNIT = "llm-lr-trial"      # one run of the lr sweep: its held-out nmse
CE_UNIT = "llm-ce"            # one trained SAE spliced into the model: CE, Delta CE, KL
STORE_DIR = "saes"            # <out>/saes: the result store (cells/<id>.json) and checkpoints/<id>/
CHECKPOINTS = "checkpoints"
FIRING = "firing_frequency.json"   # beside each checkpoint: the held-out firing frequency per latent


def llm_unit(kind: str, key: dict, group: str = "") -> Unit:
    """A :class:`~polysemy.experiments.spec.Unit` of the LLM bench; units sharing a non-empty ``group``
    run together (the seeds of a setting when they train stacked; the CE splices, which share the clean
    and zero-ablated passes), others alone."""
    return Unit.make(kind, key, group=f"llm-bench:{kind}:{group}" if group else None)


@dataclasses.dataclass
class LLMBenchSpec:
    """One phase of ``polysemy llm-bench`` as an experiment spec for the runner (``runner`` module
    docstring): its ``units`` run in this process (``in_process``) through ``bench.evaluate``, which holds
    the loaded model and the activation stores. A unit's key holds everything its result depends on (the
    data settings, the full training config; for a CE unit, the trained SAE's id), so the store of an
    interrupted run resumes it and a changed setting trains anew. ``frame(rows)``: one row per trained SAE."""

    bench: "_Bench"
    units: list
    name = "llm-bench"
    in_process = True

    def expand(self) -> list:
        return list(self.units)

    def default_evaluator(self, device: str = "cpu", precision: str = "fp32"):
        return self.bench.evaluate

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps({"experiment": self.name, "config": self.bench.cfg.to_dict(),
                           "data": self.bench.data_key}, indent=indent, sort_keys=True)

    def frame(self, rows: list[dict]) -> pd.DataFrame:
        return pd.DataFrame([flatten_row(r) for r in rows if r.get("kind") == SAE_UNIT])


class _Bench:
    """The live state the units are evaluated with: the model, the stores, the training recipe."""

    def __init__(self, cfg: LLMBenchConfig, lm, train_store, x_eval, ce_contexts, steps: int, data_key: dict,
                 root: Path, progress: bool):
        self.cfg, self.lm, self.train_store, self.x_eval = cfg, lm, train_store, x_eval
        self.normalizer = train_store.normalizer
        self.ce_contexts, self.steps, self.data_key, self.progress = ce_contexts, steps, data_key, progress
        self.store = ResultStore(root)
        src, stack = cfg.source, cfg.training.stack_seeds
        self.stack = src.device.startswith("cuda") if stack is None else stack
        self.buffer_shards = max(1, -(-src.shuffle_tokens // (src.contexts_per_shard * (src.context_length - 1))))
        self.train_configs: dict[str, TrainConfig] = {}   # cell id -> the unit's training config
        self.sae_of_ce: dict[str, str] = {}               # CE unit id -> its SAE unit id
        self.ce_evaluator: CEEvaluator | None = None
        self.reused = {SAE_UNIT: [0, 0], LR_UNIT: [0, 0], CE_UNIT: [0, 0]}   # kind -> [reused, units]
        self.loaded: dict[str, tuple] = {}   # cell id -> (model, firing): read once, for the splices and the aggregates
        self.computed: set[str] = set()                   # ids of the units computed by this process
        self.seen: set[str] = set()                       # ids of the units run (for the counts)

    # -- units ---------------------------------------------------------------------------------------------
    def train_config(self, method: str, params: dict, seed: int, lr, n_steps: int) -> TrainConfig:
        training = self.cfg.training
        params = get_method(method).bench_params(dict(params), n_steps)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # the buffer-size advisory, once per config otherwise
            return TrainConfig(method=method, width=training.width, steps=n_steps, batch_size=training.batch_size,
                               lr=lr, seed=seed, params=params, log_every=max(1, n_steps // 10))

    def training_unit(self, kind: str, tcfg: TrainConfig, group: str = "") -> Unit:
        unit = llm_unit(kind, {"data": self.data_key, "train": tcfg.to_dict()}, group)
        self.train_configs[unit.cell_id] = tcfg
        return unit

    def sae_units(self, tcfgs: list[TrainConfig]) -> list[Unit]:
        """The seeds of one setting; stacked training groups them (``train_stacked``)."""
        group = ""
        if self.stack and len(tcfgs) > 1:
            group = unit_id_for("setting", to_jsonable({**tcfgs[0].to_dict(), "seed": None}))
        return [self.training_unit(SAE_UNIT, t, group) for t in tcfgs]

    def ce_unit(self, sae_id: str) -> Unit:
        unit = llm_unit(CE_UNIT, {"data": self.data_key, "sae": sae_id,
                                    "batch_contexts": self.ce_batch_contexts}, "ce")
        self.sae_of_ce[unit.cell_id] = sae_id
        return unit

    @property
    def ce_batch_contexts(self) -> int:
        return max(1, min(self.cfg.source.batch_contexts, 8))

    def checkpoint(self, cell_id: str) -> Path:
        return self.store.root / CHECKPOINTS / cell_id

    # -- running them --------------------------------------------------------------------------------------
    def run(self, units: list[Unit]) -> dict[str, dict]:
        """Run ``units`` into the store (those already there are kept); {cell id: stored row}."""
        ids = list(dict.fromkeys(u.cell_id for u in units))
        for unit in units:   # a row whose checkpoint is gone or damaged: that SAE is trained again
            if unit.kind == SAE_UNIT and self.store.has(unit.cell_id) and not is_checkpoint(self.checkpoint(unit.cell_id)):
                _log(f"warning: the checkpoint of unit {unit.cell_id} in {self.store.root} is missing or "
                     "damaged; training it again")
                self.store.cell_path(unit.cell_id).unlink()
        run_sweep(LLMBenchSpec(self, units), self.store.root, progress=self.progress)
        for unit in {u.cell_id: u for u in units if u.cell_id not in self.seen}.values():
            self.seen.add(unit.cell_id)   # each unit counted once: reused = found done, not computed here
            self.reused[unit.kind][1] += 1
            self.reused[unit.kind][0] += unit.cell_id not in self.computed
        return {row["cell_id"]: row for row in self.store.rows(ids)}

    def evaluate(self, units: list[Unit]) -> list[dict]:
        """The runner's evaluator: every unit of a group is of one kind."""
        self.computed.update(u.cell_id for u in units)
        kind = units[0].kind
        if kind == LR_UNIT:
            return [self._lr_trial(u) for u in units]
        if kind == SAE_UNIT:
            return self._train(units)
        return self._splice(units)

    def _stream(self, seed: int):
        return self.train_store.stream(self.cfg.training.batch_size, seed=seed, device=self.cfg.source.device,
                                       buffer_shards=self.buffer_shards)

    def _fit(self, tcfg: TrainConfig):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # the buffer-size advisory is printed once per config otherwise
            return train(tcfg, self._stream(tcfg.seed), d=self.lm.d_model, progress=self.progress)

    def _lr_trial(self, unit: Unit) -> dict:
        result = self._fit(self.train_configs[unit.cell_id])
        x_small = self.x_eval[:LR_SWEEP_EVAL_TOKENS]
        return {"nmse": evaluate_sae(result.model, x_small)["nmse"], "eval_tokens": int(x_small.shape[0])}

    def _train(self, units: list[Unit]) -> list[dict]:
        """Every seed of a setting: one stacked model (seconds split evenly) or one after another; each
        trained SAE is saved (atomically) before its row is returned, so a stored row has its model."""
        tcfgs = [self.train_configs[u.cell_id] for u in units]
        if not self.stack or len(tcfgs) == 1:
            results = [self._fit(t) for t in tcfgs]
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                results = train_stacked(tcfgs, [self._stream(t.seed) for t in tcfgs], d=self.lm.d_model,
                                        progress=self.progress)
            results = [dataclasses.replace(r, seconds=r.seconds / len(tcfgs)) for r in results]
        out = []
        for unit, tcfg, result in zip(units, tcfgs, results):
            metrics = evaluate_sae(result.model, self.x_eval, normalizer=self.normalizer)
            firing = metrics.pop("firing_frequency")
            save_checkpoint(result.model, self.checkpoint(unit.cell_id), extra_json={FIRING: firing.tolist()})
            out.append({"method": tcfg.method, "seed": tcfg.seed, "lr": tcfg.lr, "metrics": metrics,
                        "seconds": result.seconds, "samples": result.samples,
                        "checkpoint": f"{CHECKPOINTS}/{unit.cell_id}"})
        return out

    def _splice(self, units: list[Unit]) -> list[dict]:
        models = [self.load(self.sae_of_ce[u.cell_id])[0] for u in units]
        results = self.ce().evaluate_many(models)
        return [{"ce": r} for r in results]

    def ce(self) -> CEEvaluator:
        """The CE evaluator (its clean and zero-ablated passes), built once, when first needed."""
        if self.ce_evaluator is None:
            src = self.cfg.source
            self.ce_evaluator = CEEvaluator(self.lm.model, self.ce_contexts, src.layer, src.site, self.normalizer,
                                            src.dtype, batch_contexts=self.ce_batch_contexts)
        return self.ce_evaluator

    def load(self, cell_id: str):
        """A trained SAE from the store: (model, held-out firing frequency per latent), read once."""
        if cell_id not in self.loaded:
            self.loaded[cell_id] = self._read(cell_id)
        return self.loaded[cell_id]

    def _read(self, cell_id: str):
        path = self.checkpoint(cell_id)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # the training config's advisories, said when it trained
            model = load_checkpoint(path, device=self.cfg.source.device).model
        try:
            firing = np.asarray(json.loads((path / FIRING).read_text(encoding="utf-8")), dtype=np.float64)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{str(path / FIRING)!r} is missing or damaged ({type(exc).__name__}); delete "
                              f"{str(self.store.cell_path(cell_id))!r} to train that SAE again") from None
        return model, firing


LR_SWEEP_EVAL_TOKENS = 8192   # held-out tokens an lr trial is scored on


def run_llm_bench(cfg: LLMBenchConfig, out_dir: str | Path, progress: bool = True, *,
                  return_frame: bool = False):
    """Run the benchmark, write figures / snippets / results.json into ``out_dir``, return the results
    (with ``return_frame``: (results, DataFrame of the per-seed rows, one per trained SAE)).

    Every trained SAE, lr trial and CE splice is a unit of the result store ``out_dir/saes``
    (:class:`LLMBenchSpec`): a trained SAE's checkpoint is saved beside its row, so rerunning an
    interrupted run with the same ``out_dir`` and settings loads the finished units instead of training
    them again (said on stderr); the aggregates (consistency, snippets, figures, results.json) always
    read the models back from the store."""
    started = time.perf_counter()
    src, budget, training, rule, snip = cfg.source, cfg.budget, cfg.training, cfg.consistency, cfg.snippets
    out = Path(out_dir)
    texts = preflight(cfg, out)   # --out, --device, --text, --model and --layer, before anything is written
    check_store_dir("--out", out / STORE_DIR, "the LLM bench's store of trained SAEs")
    out.mkdir(parents=True, exist_ok=True)
    check_device(src.device)
    if src.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
    write_json_atomic(out / "config.json", cfg.to_dict())

    t0 = time.perf_counter()
    lm = load_model(src.model, src.device)
    load_seconds = time.perf_counter() - t0
    require(src.layer <= lm.n_layers, f"layer must be an integer in [1, {lm.n_layers}], got {src.layer}")
    _log(f"model {lm.label} ({lm.n_layers} blocks, d = {lm.d_model}) loaded in {load_seconds:.1f} s")

    T = src.context_length
    n_train = -(-budget.tokens // (T - 1))
    n_eval = -(-budget.eval_tokens // (T - 1))
    n_ce = -(-budget.ce_tokens // (T - 1))
    contexts = token_contexts(lm.tokenizer, texts, T, n_train + n_eval + n_ce, seed=budget.text_seed)
    store_key = _store_key(cfg, lm.name)
    stores = out / "stores" / store_key
    common = dict(layer=src.layer, site=src.site, dtype=src.dtype, contexts_per_shard=src.contexts_per_shard,
                  batch_contexts=src.batch_contexts, progress=progress, store_dtype=src.store_dtype)
    t0 = time.perf_counter()
    train_store = extract_activations(lm, contexts[:n_train], stores / "train", normalize=cfg.normalize, **common)
    eval_store = extract_activations(lm, contexts[n_train:n_train + n_eval], stores / "eval",
                                     normalize=train_store.normalizer, **common)
    extract_seconds = time.perf_counter() - t0
    x_eval = eval_store.activations()
    normalizer = train_store.normalizer
    n_kept = int(train_store.meta["n_kept_tokens"])
    steps = cfg.n_steps(n_kept)
    _log(f"activations: {n_kept} training and {x_eval.shape[0]} held-out tokens "
         f"(outlier coordinates {normalizer.to_dict()['outlier_coordinates']}, "
         f"{train_store.meta['n_sink_tokens']} sink tokens) in {extract_seconds:.1f} s; {steps} steps of "
         f"{training.batch_size} = {steps * training.batch_size / max(n_kept, 1):.2f} epochs")

    data_key = _data_key(cfg, lm.name, store_key)
    bench = _Bench(cfg, lm, train_store, x_eval, contexts[n_train + n_eval:], steps, data_key, out / STORE_DIR,
                   progress)

    # -- learning rates: fixed, per method, or from a short sweep (seed 0, held-out nmse) ---------------
    lr_sweep: dict[str, dict] = {}
    chosen_lr: dict[str, float | None] = {}

    def choose_lrs(plan: list) -> None:
        """The lr of every method of ``plan`` not chosen yet (its first setting's params), its sweep's
        trials run as units."""
        trials = {}
        for _, _, method, params, _ in plan:
            if method in chosen_lr or method in trials:
                continue
            base = training.lrs.get(method, training.lr)
            if not training.lr_sweep or method in training.lrs:
                chosen_lr[method] = base
                continue
            base = bench.train_config(method, params, 0, base, 1).lr   # the method's default when base is None
            sweep_steps = max(1, int(round(training.lr_sweep_fraction * steps)))
            trials[method] = (sweep_steps, [
                (float(base * mult), bench.training_unit(
                    LR_UNIT, bench.train_config(method, params, 0, float(base * mult), sweep_steps)))
                for mult in training.lr_sweep])
        stored = bench.run([u for _, units in trials.values() for _, u in units])
        for method, (sweep_steps, units) in trials.items():
            tried = {f"{lr:.3g}": _finite(stored[u.cell_id]["nmse"]) for lr, u in units}
            best = min(tried, key=lambda key: tried[key] if np.isfinite(tried[key]) else np.inf)
            chosen_lr[method] = float(best)
            eval_tokens = stored[units[0][1].cell_id]["eval_tokens"]
            lr_sweep[method] = {"steps": sweep_steps, "tokens": sweep_steps * training.batch_size,
                                "nmse_by_lr": tried, "chosen": float(best), "eval_tokens": eval_tokens}
            _log(f"lr sweep {method}: {tried} -> {best}")

    # -- every setting's seeds, one unit per trained SAE -------------------------------------------------
    runs: dict[tuple[str, str], list] = {}    # (name, label) -> [(unit, stored row)] by seed
    arms_of: dict[tuple[str, str], str] = {}

    def train_settings(plan: list) -> None:
        choose_lrs(plan)
        units_of = {}
        for name, label, method, params, arm in plan:
            n_seeds = training.seeds_for(arm, name)
            lr = chosen_lr[method]
            tcfgs = [bench.train_config(method, params, seed, lr, steps) for seed in range(n_seeds)]
            _log(f"{name} {label} [{arm}] seeds 0..{n_seeds - 1} (lr {tcfgs[0].lr:g})"
                 + (" stacked" if bench.stack and n_seeds > 1 else ""))
            units_of[(name, label)] = bench.sae_units(tcfgs)
            arms_of[(name, label)] = arm
        stored = bench.run([u for units in units_of.values() for u in units])
        for key, units in units_of.items():
            runs.setdefault(key, []).extend((u, stored[u.cell_id]) for u in units)

    train_settings(cfg.settings())
    matched_k = None
    if ("gba", "") in runs:
        matched_k = int(round(_mean(row["metrics"]["l0"] for _, row in runs[("gba", "")])))
        matched = cfg.matched_settings(matched_k)
        if matched:
            train_settings(matched)

    # -- CE recovered, Delta CE and KL: every spliced SAE shares the clean and zero-ablated passes -------
    t0 = time.perf_counter()
    ce_seeds = training.seeds if budget.ce_seeds is None else budget.ce_seeds
    spliced = [(key, i) for key, seeds in runs.items() for i, (_, row) in enumerate(seeds) if row["seed"] < ce_seeds]
    ce_units = [bench.ce_unit(runs[key][i][0].cell_id) for key, i in spliced]
    ce_rows = bench.run(ce_units)
    ce_of = {(key, i): ce_rows[u.cell_id]["ce"] for (key, i), u in zip(spliced, ce_units)}
    if ce_units:
        ce_clean, ce_zero, kl_zero = (ce_rows[ce_units[0].cell_id]["ce"][k] for k in ("ce_clean", "ce_zero", "kl_zero"))
        ce_seconds = float(sum(ce_rows[u.cell_id]["seconds"] for u in {u.cell_id: u for u in ce_units}.values()))
    else:
        ce_eval = bench.ce()
        ce_clean, ce_zero, kl_zero = ce_eval.ce_clean, ce_eval.ce_zero, ce_eval.kl_zero
        ce_seconds = time.perf_counter() - t0
    ce_tokens = int(n_ce * (T - 1))
    _log(f"CE clean {ce_clean:.3f}, zero-ablated {ce_zero:.3f} nats/token over "
         f"{ce_tokens} tokens, {len(spliced)} SAEs spliced in {ce_seconds:.0f} s")
    reused = sum(r for r, _ in bench.reused.values())
    if reused:
        counts = ", ".join(f"{r} of {n} {what}" for (r, n), what in
                           zip(bench.reused.values(), ("trained SAEs", "lr trials", "CE splices")) if n)
        _log(f"reused {reused} finished units from {bench.store.root} ({counts}); another --out trains anew")

    # -- the aggregates, from the models in the store ------------------------------------------------------
    rows, frame_rows = [], []
    for (name, label), seeds in runs.items():
        per_seed = []
        for i, (unit, stored) in enumerate(seeds):
            model, firing = bench.load(unit.cell_id)
            groups = group_frequencies(model, firing)
            per_seed.append({"seed": stored["seed"], "lr": stored["lr"], **stored["metrics"],
                             **ce_of.get(((name, label), i), {}), "seconds": stored["seconds"],
                             "samples_per_second": stored["samples"] / max(stored["seconds"], 1e-9),
                             **({"group_frequencies": groups} if groups is not None else {})})
            frame_rows.append({"method": name, "setting": label, "arm": arms_of[(name, label)],
                               "cell_id": unit.cell_id, "checkpoint": str(bench.checkpoint(unit.cell_id)),
                               **per_seed[-1]})
        cons = consistency([bench.load(u.cell_id)[0].W_dec.detach().cpu().numpy() for u, _ in seeds],
                           [bench.load(u.cell_id)[1] for u, _ in seeds], rule.alpha, rule.threshold)
        tcfg0 = bench.train_configs[seeds[0][0].cell_id]
        row = {"method": name, "setting": label, "arm": arms_of[(name, label)],
               "train_method": tcfg0.method, "params": tcfg0.params,
               **{k: tcfg0.params[k] for k in ("k", "l1", "htf", "ltf", "decoder") if k in tcfg0.params},
               "lr": tcfg0.lr, "lr_schedule": tcfg0.lr_schedule, "width": training.width, "steps": steps,
               "batch_size": training.batch_size, "train_tokens": steps * training.batch_size, "seeds": len(seeds),
               "eval_tokens": int(x_eval.shape[0]), "alive_tokens": int(x_eval.shape[0]),
               "ce_tokens": ce_tokens, "ce_seeds": sum(1 for s in per_seed if "ce_sae" in s)}
        for key in ROW_KEYS:
            row[key] = _mean(s.get(key) for s in per_seed)
            if key in ("nmse", "delta_ce", "kl", "l0", "ce_recovered", "explained_variance_raw"):
                row[key + "_sem"] = _sem(s.get(key) for s in per_seed)
        row.update(cons)
        row["per_seed"] = per_seed
        rows.append(row)

    floor = random_consistency(training.width, lm.d_model, rule.alpha, rule.threshold)
    title = (f"{lm.label}, layer {src.layer} {src.site}, width {training.width}, {n_kept} tokens, "
             f"{steps} steps x {training.batch_size}")
    snippet_pages = {}
    if snip.snippet_features > 0:
        pages = [("gba", ("gba", ""), "snippets.html")]
        topk_key = next((key for key in runs if key[0] == "topk" and arms_of[key] == "l0-matched"),
                        next((key for key in runs if key[0] == "topk"), None))
        if topk_key is not None:
            pages.append(("topk", topk_key, "snippets-topk.html"))
        for name, key, file in pages:
            if key not in runs:
                continue
            model, firing = bench.load(runs[key][0][0].cell_id)
            features = choose_features(firing, snip.snippet_features, seed=0)
            notes = _gba_targets(model, features)
            setting = f" {key[1]}" if key[1] else ""
            page = snippets_page(model, train_store, lm.tokenizer, features, firing,
                                 f"{name}{setting} features (seed 0) - {title}",
                                 per_feature=snip.snippets_per_feature, notes=notes, max_tokens=snip.snippet_tokens)
            write_text_atomic(out / file, page)
            snippet_pages[name] = str(out / file)

    report = {
        "benchmark": "llm-bench", "title": title, "model": lm.name, "model_label": lm.label,
        "layer": src.layer, "site": src.site, "device": src.device,
        "dtype": src.dtype, "d": lm.d_model, "width": training.width, "train_tokens": n_kept, "steps": steps,
        "epochs": steps * training.batch_size / max(n_kept, 1),
        "eval_tokens": int(x_eval.shape[0]), "ce_tokens": ce_tokens,
        "ce_clean": ce_clean, "ce_zero": ce_zero, "kl_zero": kl_zero,
        "l0_matched_k": matched_k, "lr_sweep": lr_sweep, "lrs": {m: lr for m, lr in chosen_lr.items()},
        "definitions": DEFINITIONS,
        "consistency_rule": f"fraction of the top-{rule.alpha:g} most active neurons (held-out firing frequency) "
                            f"whose max cosine with another seed's decoder rows exceeds {rule.threshold:g}",
        "consistency_random": floor["consistency"], "consistency_random_mean_mcs": floor["consistency_mean_mcs"],
        "normalization": {k: v for k, v in normalizer.to_dict().items() if k not in ("mean", "coord_scale")},
        "throughput": {"extraction_tokens_per_second": train_store.meta.get("extraction_tokens_per_second"),
                       "training_samples_per_second": _mean(r["samples_per_second"] for r in rows),
                       "ce_token_passes_per_second": ce_tokens * (len(spliced) + 2) / max(ce_seconds, 1e-9)},
        "seconds": {"load": load_seconds, "extract": extract_seconds, "ce": ce_seconds,
                    "train": float(sum(r["seconds"] * r["seeds"] for r in rows)),
                    "total": time.perf_counter() - started},
        "store": str(stores), "config": cfg.to_dict(), "methods": rows,
        "figures": {"frontier": str(out / "frontier.png"), "consistency": str(out / "consistency.png"),
                    "downstream": str(out / "downstream.png"), "snippets": snippet_pages.get("gba"),
                    "snippets_topk": snippet_pages.get("topk")},
    }
    report = to_jsonable(report, strict=True)
    figures_from_report(report, out)
    write_json_atomic(out / "results.json", report)
    if return_frame:
        return report, pd.DataFrame([flatten_row(to_jsonable(r)) for r in frame_rows])
    return report


def _finite(value) -> float:
    """A stored metric as a float (None, from strict JSON, as nan)."""
    return float("nan") if value is None else float(value)

DEFINITIONS = {
    "nmse": "SSE / sum ||x||^2 on normalised held-out tokens (ours)",
    "explained_variance": "1 - mean ||x - x_hat||^2 / Var(x), normalised space (SAELens's definition)",
    "explained_variance_raw": "the same on de-normalised activations, the model's scale (SAELens's definition)",
    "ce_recovered": "(CE_zero - CE_sae) / (CE_zero - CE_clean), zero ablation at every position (SAELens's)",
    "delta_ce": "CE_sae - CE_clean, nats per token (SAEBench's ce_loss_with_sae - ce_loss_without_sae)",
    "kl": "mean per-token KL(P_clean || P_sae), nats (SAEBench's kl_div_with_sae)",
    "kl_score": "(KL_zero - KL_sae) / KL_zero (SAEBench's kl_div_score)",
    "alive_fraction": "latents firing at least once on the alive_tokens held-out tokens",
    "_sem": "standard error of the mean over seeds",
}


def _gba_targets(sae, features: list[int]) -> dict[int, str] | None:
    target = getattr(getattr(sae, "stack", None), "target_GM", None)
    if target is None:
        return None
    return {m: f"group target frequency {100 * float(target[0, m]):.3g}%" for m in features}


def format_table(report: dict) -> str:
    """A plain-text table of the per-method rows, for the terminal."""
    head = (f"{'method':<9} {'setting':<18} {'seeds':>5} {'lr':>7} {'nmse':>7} {'EV':>6} {'EVraw':>6} {'L0':>7} "
            f"{'alive':>6} {'CE rec':>7} {'dCE':>6} {'KL':>6} {'consist':>7} {'MCS':>5} {'sec':>5}")
    lines = [f"{report.get('model_label', report['model'])}  layer {report['layer']} {report['site']}  width "
             f"{report['width']}  {report['train_tokens']} training tokens ({report.get('epochs', 1):.2f} epochs)  "
             f"CE clean {report['ce_clean']:.3f} / zero {report['ce_zero']:.3f} over {report['ce_tokens']} tokens",
             head, "-" * len(head)]

    def f(v, fmt):
        return format(float("nan") if v is None else v, fmt)

    for r in report["methods"]:
        lines.append(f"{r['method']:<9} {r['setting'][:18]:<18} {r['seeds']:>5} {f(r.get('lr'), '7.0e')} "
                     f"{f(r['nmse'], '7.4f')} {f(r['explained_variance'], '6.3f')} "
                     f"{f(r.get('explained_variance_raw'), '6.3f')} {f(r['l0'], '7.1f')} {f(r['alive_fraction'], '6.3f')} "
                     f"{f(r['ce_recovered'], '7.3f')} {f(r.get('delta_ce'), '6.3f')} {f(r.get('kl'), '6.3f')} "
                     f"{f(r['consistency'], '7.3f')} {f(r['consistency_mean_mcs'], '5.2f')} {f(r['seconds'], '5.0f')}")
    lines.append(f"EV / EVraw: normalised / model-scale explained variance; alive over {report['eval_tokens']} held-out "
                 f"tokens; dCE = CE_sae - CE_clean and KL(clean || sae) in nats per token; consist = fraction of "
                 f"top-alpha neurons with cross-seed MCS > threshold, MCS = their mean max cosine; two random "
                 f"dictionaries: {report['consistency_random']:.3f} / {report['consistency_random_mean_mcs']:.2f}; "
                 f"total {report['seconds']['total']:.0f} s")
    gba = next((r for r in report["methods"] if (r["method"], r["setting"]) == ("gba", "")), None)
    groups = gba["per_seed"][0].get("group_frequencies") if gba else None
    if groups:
        pairs = ", ".join(f"{100 * g['target']:.2g}% -> {100 * g['mean_frequency']:.2g}%" for g in groups)
        lines.append(f"gba groups, target -> achieved mean frequency on held-out tokens (seed 0): {pairs}")
    return "\n".join(lines)

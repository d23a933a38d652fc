"""Deployment recipes: the launch command (and config file) that serves one deployment on a real engine.

A frontier point, a plan's recommended point or a fleet row says "TP 8, PP 1, EP 8, batch 194, attention
DP"; a recipe says it the way vLLM (``vllm serve``), SGLang (``python -m sglang.launch_server``) or
TensorRT-LLM (``trtllm-serve`` with its extra LLM-API options YAML) take it, and for a disaggregated pool a
prefill/decode pair (SGLang PD, or NVIDIA Dynamo with vLLM or TensorRT-LLM workers). Every flag comes from the
engine's record (``instances/engines/recipes/<engine>.toml``, each entry with the documentation that names
it); a deployment the engine's documentation does not cover (2-D TP, EP over part of a TP group where only
all-or-nothing exists, attention DP on a non-MLA model) raises ``RecipeError`` saying so, never a made-up flag.

What each setting is, from the deployment:

* parallelism: TP, PP, EP as the layout has them; attention DP (MLA models) as the engine spells it: vLLM
  ``--data-parallel-size`` over a TP of 1, SGLang ``--tp-size --dp-size --enable-dp-attention``, TensorRT-LLM
  ``enable_attention_dp`` in the YAML.
* max running sequences: the batch (per DP rank or pipeline micro-batch where the engine counts so, said in a
  note); max tokens per step: the decode tokens of a step, batch x (draft + 1), plus one whole prompt (isl),
  as the serving model prefills a prompt in one pass (``formulations/serving.py``); a prefill instance takes
  one prompt, a decode instance only decode tokens; max model length isl + osl.
* memory fraction: the record's documented default (the engine's own), unless given.
* quantisation and KV dtype from the weight and KV bits; speculative decoding from the drafter and draft length.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from infecon.formulations.errors import InfeconError
from infecon.formulations.specs import HardwareSpec, ModelSpec
from infecon.instances.recipes import RecipeRecord, get_recipe_record

ROLES = ("aggregated", "prefill", "decode")
RECIPE_ENGINES = ("vllm", "sglang", "trtllm")
MODEL_PLACEHOLDER = "$MODEL"  # a shell variable the note asks the user to set
_HF_ID = re.compile(r"\b([A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)\b(?= (?:config\.json|model card))")


class RecipeError(InfeconError):
    """The engine cannot run this deployment as its documentation stands (said instead of an invented flag)."""


@dataclass(frozen=True)
class Deployment:
    """One instance to launch: the model and GPUs, the layout and batch, precisions, requests and drafter.

    ``role``: ``aggregated`` (prefill and decode in one instance), or one side of a disaggregated pair.
    """

    model: ModelSpec
    hardware: HardwareSpec
    tp_rows: int
    tp_cols: int
    pp: int
    ep: int
    batch: int
    attention_dp: bool = False
    weight_bits: int = 16
    kv_bits: int = 16
    isl: int = 1024
    osl: int = 1024
    drafter: ModelSpec | None = None
    draft_tokens: int = 0
    role: str = "aggregated"
    context_tokens: int | None = None  # the mean decode context when set apart from isl + osl/2 (--context)
    weight_format: str = ""  # a block-scaled weight format (mxfp4, nvfp4) where the workload names one

    @property
    def tp(self) -> int:
        return self.tp_rows * self.tp_cols

    @property
    def gpus(self) -> int:
        return self.tp * self.pp

    @property
    def max_model_len(self) -> int:
        """Prompt plus output tokens, or the decode context plus the half of the output still to come when the
        problem set its own (``--context``), if longer."""
        longest = self.isl + self.osl
        if self.context_tokens is not None:
            longest = max(longest, self.context_tokens + math.ceil(self.osl / 2))
        return longest

    @property
    def nodes(self) -> int:
        return max(1, math.ceil(self.gpus / self.hardware.node_size_gpus))

    def describe(self) -> str:
        grid = f"{self.tp_rows}x{self.tp_cols}" if self.tp_rows > 1 else str(self.tp_cols)
        return (f"{self.model.name} on {self.gpus} x {self.hardware.name}: TP {grid}, PP {self.pp}, EP {self.ep}"
                + (", attention DP" if self.attention_dp else "") + f", batch {self.batch}, weights "
                f"{self.weight_bits}-bit, KV {self.kv_bits}-bit, isl {self.isl} / osl {self.osl}"
                + (f", drafter {self.drafter.name} x {self.draft_tokens}" if self.drafter and self.draft_tokens else "")
                + ("" if self.role == "aggregated" else f" ({self.role} instance)"))


@dataclass(frozen=True)
class Recipe:
    """A launch recipe: shell ``commands`` (one per process to start), config ``files`` (name -> text), ``notes``.

    ``flags`` and ``options`` list every command-line flag and YAML key emitted, so tests can check each
    against the engine's record.
    """

    title: str
    engines: tuple[str, ...]
    commands: tuple[str, ...]
    files: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "notes", tuple(dict.fromkeys(self.notes)))  # a pair's two sides say some twice

    def text(self) -> str:
        """The recipe as a shell script a user can read and run: files as heredocs, then the commands."""
        lines = [f"# {self.title}"]
        lines += [f"# note: {note}" for note in self.notes]
        for name, body in self.files.items():
            lines += [f"cat > {name} <<'EOF'", body.rstrip("\n"), "EOF"]
        lines += list(self.commands)
        return "\n".join(lines) + "\n"


def hf_model_id(model: ModelSpec) -> str | None:
    """The Hugging Face repository of a model: its ``hf_id`` when the spec has one, else the repository its
    TOML cites for its config (``meta-llama/Meta-Llama-3-70B config.json``), else None."""
    explicit = getattr(model, "hf_id", None)
    if explicit:
        return str(explicit)
    for key in ("n_layers", "d_model", "name"):
        match = _HF_ID.search(model.sources.get(key, ""))
        if match:
            return match.group(1)
    return None


# ---------------------------------------------------------------- checks shared by every engine


def _check(deployment: Deployment, record: RecipeRecord) -> None:
    """Raise ``RecipeError`` for what the engine's documentation does not cover."""
    d, name = deployment, f"{record.engine} {record.version}"
    if d.role not in ROLES:
        raise RecipeError(f"role must be one of {', '.join(ROLES)} (got {d.role!r})")
    vendors = record.values.get("hardware_vendors", "").split()
    if vendors and d.hardware.name.split()[0] not in vendors:
        raise RecipeError(f"{name} does not run on {d.hardware.name}: it runs on {', '.join(vendors)} hardware "
                          f"({record.source('values', 'hardware_vendors')})")
    if d.tp_rows > 1 and not record.supported("two_d_tensor_parallel"):
        raise RecipeError(f"{name} has no 2-D tensor parallelism (TP {d.tp_rows}x{d.tp_cols}): "
                          f"{record.source('supports', 'two_d_tensor_parallel')}; choose a 1-D layout")
    if d.pp > 1 and not record.supported("pipeline_parallel"):
        raise RecipeError(f"{name} has no pipeline parallelism (PP {d.pp}): choose PP 1 or another engine")
    if d.attention_dp and d.model.attention != "mla":
        raise RecipeError(f"attention data parallelism applies to MLA models (DeepSeek-V3/R1), not "
                          f"{d.model.name} ({d.model.attention} attention)")
    if d.attention_dp and not record.supported("attention_dp"):
        raise RecipeError(f"{name} has no attention data parallelism")
    if d.attention_dp and d.pp > 1 and not record.supported("attention_dp_with_pp"):
        raise RecipeError(f"{name} documents attention data parallelism without pipeline stages only (PP {d.pp}): "
                          f"{record.source('supports', 'attention_dp_with_pp')}")
    if 1 < d.ep < d.tp and not record.supported("partial_expert_parallel"):
        raise RecipeError(f"{name} cannot run EP {d.ep} inside a TP group of {d.tp}: "
                          f"{record.source('supports', 'partial_expert_parallel')}; choose EP 1 or EP {d.tp}")
    if d.kv_bits == 4 and not record.supported("kv_4bit"):
        raise RecipeError(f"{name} has no 4-bit KV cache: {record.source('supports', 'kv_4bit')}")
    if d.kv_bits == 32 or d.weight_bits == 32:
        raise RecipeError(f"{name}: 32-bit weights or KV cache are not a serving configuration engines document")
    if d.drafter is not None and d.draft_tokens > 0 and not record.supported("speculative_draft_model"):
        raise RecipeError(f"{name} has no speculative decoding with a separate draft model")


def _model_arg(deployment: Deployment, notes: list[str]) -> str:
    model_id = hf_model_id(deployment.model)
    if model_id is None:
        notes.append(f"{deployment.model.name} names no Hugging Face repository: set MODEL to its id or local path")
        return MODEL_PLACEHOLDER
    return model_id


def _drafter_arg(deployment: Deployment, notes: list[str]) -> str:
    assert deployment.drafter is not None
    draft_id = hf_model_id(deployment.drafter)
    if draft_id is None:
        notes.append(f"drafter {deployment.drafter.name} names no Hugging Face repository: set DRAFTER to its id "
                     "or local path")
        return "$DRAFTER"
    return draft_id


def _speculating(d: Deployment) -> bool:
    return d.drafter is not None and d.draft_tokens > 0


def _decode_tokens(d: Deployment) -> int:
    return d.batch * (d.draft_tokens + 1 if _speculating(d) else 1)


def max_tokens_per_step(d: Deployment) -> int:
    """Tokens one forward pass may carry: a decode step's tokens plus one whole prompt (aggregated); a prompt
    (prefill instance); decode tokens only (decode instance)."""
    if d.role == "prefill":
        return d.isl
    if d.role == "decode":
        return _decode_tokens(d)
    return _decode_tokens(d) + d.isl


def _common_notes(d: Deployment, record: RecipeRecord, memory_fraction: float, notes: list[str]) -> None:
    if d.weight_format:
        notes.append(f"{d.weight_format.upper()} weights come from the checkpoint (gpt-oss ships MXFP4, NVIDIA "
                     "ModelOpt writes NVFP4): serve such a checkpoint; the engine reads its quantization_config")
    elif d.weight_bits == 4:
        notes.append("4-bit weights come from the checkpoint (AWQ, GPTQ, NVFP4 or MXFP4): serve a 4-bit "
                     "checkpoint of the model; no flag quantises to 4 bits on load")
    if d.drafter is not None and d.draft_tokens == 0:
        notes.append("draft length 0 is this point's optimum: no speculative decoding")
    if _speculating(d):
        notes.append("the drafter runs on the target's GPUs with the engine's own drafter layout (infecon's "
                      "latency used its fastest layout on these GPUs)")


def _shell(parts: list[str]) -> str:
    """``parts`` as one command, continued over lines for reading (values quoted where the shell needs it)."""
    text = [f'"{part}"' if "$" in part and not part.startswith("{") else shlex.quote(part) for part in parts]
    lines, current = [], text[0]
    for token in text[1:]:
        if token.startswith("--"):
            lines.append(current)
            current = "  " + token
        else:
            current += " " + token
    lines.append(current)
    return " \\\n".join(lines)


# ---------------------------------------------------------------- vLLM


def _vllm_args(d: Deployment, record: RecipeRecord, memory_fraction: float, notes: list[str]) -> list[str]:
    f = record.flag
    args: list[str] = []
    if d.attention_dp:
        # vLLM's data-parallel attention: DP ranks of TP 1, experts over all DP x TP ranks (EP or TP).
        args += [f("data_parallel"), str(d.tp), f("tensor_parallel"), "1"]
        per_rank = math.ceil(d.batch / d.tp)
        notes.append(f"--max-num-seqs is per data-parallel rank: {d.batch} sequences over {d.tp} ranks")
    else:
        args += [f("tensor_parallel"), str(d.tp)]
        per_rank = d.batch
    if d.pp > 1:
        args += [f("pipeline_parallel"), str(d.pp)]
        per_rank = math.ceil(d.batch / d.pp)
        if d.role != "prefill":
            notes.append(f"--max-num-seqs counts one pipeline micro-batch: {d.batch} sequences in {d.pp} "
                         "micro-batches")
    if d.ep > 1:
        args.append(f("expert_parallel"))  # EP spans every DP x TP rank (ep == tp, checked)
    if d.role != "prefill":
        args += [f("max_running"), str(per_rank)]
    args += [f("max_tokens_per_step"), str(max_tokens_per_step(d)), f("max_model_len"), str(d.max_model_len),
             f("memory_fraction"), f"{memory_fraction:g}"]
    if d.weight_bits == 8:
        args += [f("quantization"), record.values["fp8_weights"]]
    if d.kv_bits == 8:
        args += [f("kv_cache_dtype"), record.values["kv_8bit"]]
    if _speculating(d):
        config = {"model": _drafter_arg(d, notes), "num_speculative_tokens": d.draft_tokens, "method": "draft_model"}
        args += [f("speculative"), json.dumps(config)]
    if d.nodes > 1:
        notes.append(f"{d.gpus} GPUs are {d.nodes} nodes of {d.hardware.node_size_gpus}: start a Ray cluster over "
                     "them (ray start --head; ray start --address HEAD:6379) and run this on the head node")
    return args


def _vllm(d: Deployment, record: RecipeRecord, memory_fraction: float) -> Recipe:
    notes: list[str] = []
    parts = [*record.launcher.split(), _model_arg(d, notes), *_vllm_args(d, record, memory_fraction, notes)]
    _common_notes(d, record, memory_fraction, notes)
    return Recipe(f"vLLM {record.version}: {d.describe()}", (record.engine,), (_shell(parts),), notes=tuple(notes),
                  flags=_flags_in(parts))


# ---------------------------------------------------------------- SGLang


def _sglang_args(d: Deployment, record: RecipeRecord, memory_fraction: float, notes: list[str]) -> list[str]:
    f = record.flag
    args = [f("tensor_parallel"), str(d.tp)]
    if d.attention_dp:
        args += [f("data_parallel"), str(d.tp), f("attention_dp")]
    if d.pp > 1:
        args += [f("pipeline_parallel"), str(d.pp)]
    if d.ep > 1:
        args += [f("expert_parallel"), str(d.ep)]
    if d.role != "prefill":
        args += [f("max_running"), str(d.batch)]
    if d.role != "decode":
        args += [f("max_tokens_per_step"), str(d.isl)]  # one whole prompt per chunk, as the model prefills it
    args += [f("max_model_len"), str(d.max_model_len), f("memory_fraction"), f"{memory_fraction:g}"]
    if d.weight_bits == 8:
        args += [f("quantization"), record.values["fp8_weights"]]
    if d.kv_bits in (4, 8):
        args += [f("kv_cache_dtype"), record.values[f"kv_{d.kv_bits}bit"]]
    if _speculating(d):
        args += [f("speculative_algorithm"), record.values["draft_model_algorithm"],
                 f("speculative_draft_model"), _drafter_arg(d, notes), f("speculative_num_steps"), str(d.draft_tokens),
                 f("speculative_topk"), "1", f("speculative_num_draft_tokens"), str(d.draft_tokens + 1)]
    return args


def _sglang_nodes(d: Deployment, record: RecipeRecord, parts: list[str], notes: list[str]) -> list[list[str]]:
    """One command per node: SGLang starts every node with --nnodes, --node-rank and --dist-init-addr."""
    if d.nodes == 1:
        return [parts]
    notes.append(f"{d.gpus} GPUs are {d.nodes} nodes of {d.hardware.node_size_gpus}: run one command per node, "
                 "HEAD being node 0's address")
    f = record.flag
    return [[*parts, f("dist_init_addr"), "$HEAD:5000", f("nnodes"), str(d.nodes), f("node_rank"), str(rank)]
            for rank in range(d.nodes)]


def _sglang(d: Deployment, record: RecipeRecord, memory_fraction: float) -> Recipe:
    notes: list[str] = []
    parts = [*record.launcher.split(), record.model, _model_arg(d, notes),
             *_sglang_args(d, record, memory_fraction, notes)]
    if d.attention_dp:
        notes.append("--max-running-requests is the instance's total; SGLang shares it among the attention DP ranks")
    commands = _sglang_nodes(d, record, parts, notes)
    _common_notes(d, record, memory_fraction, notes)
    return Recipe(f"SGLang {record.version}: {d.describe()}", (record.engine,), tuple(_shell(c) for c in commands),
                  notes=tuple(notes), flags=_flags_in([t for c in commands for t in c]))


# ---------------------------------------------------------------- TensorRT-LLM


def _trtllm_settings(d: Deployment, record: RecipeRecord, memory_fraction: float,
                     notes: list[str]) -> dict[str, object]:
    """The deployment's settings by record key (``tensor_parallel`` -> 8), before spelling them as flags or YAML."""
    per_rank = d.batch
    if d.attention_dp:
        per_rank = math.ceil(d.batch / d.tp)
        notes.append(f"max_batch_size is per attention-DP rank: {d.batch} sequences over {d.tp} ranks")
    elif d.pp > 1 and d.role != "prefill":
        per_rank = math.ceil(d.batch / d.pp)
        notes.append(f"max_batch_size counts one pipeline micro-batch: {d.batch} sequences in {d.pp} micro-batches")
    settings: dict[str, object] = {"tensor_parallel": d.tp, "pipeline_parallel": d.pp}
    if d.ep > 1:
        settings["expert_parallel"] = d.ep
    if d.role != "prefill":
        settings["max_running"] = per_rank
    settings.update(max_tokens_per_step=max_tokens_per_step(d), max_model_len=d.max_model_len,
                    memory_fraction=memory_fraction)
    if d.weight_bits == 8:
        notes.append("TensorRT-LLM reads the weight precision from the checkpoint: serve an FP8 checkpoint "
                     "(quantised with NVIDIA ModelOpt, e.g. an nvidia/...-FP8 repository) in place of the model")
    return settings


def _yaml(options: Mapping[str, object]) -> str:
    """Dotted keys (``kv_cache_config.dtype``) as nested YAML; scalars only, which is all a recipe writes."""
    tree: dict[str, object] = {}
    for dotted, value in options.items():
        node = tree
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})  # type: ignore[assignment]
        node[leaf] = value  # type: ignore[index]

    def scalar(value: object) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value) if isinstance(value, int | float) else json.dumps(str(value))

    def emit(node: Mapping[str, object], indent: int) -> list[str]:
        lines = []
        for key, value in node.items():
            if isinstance(value, Mapping):
                lines += [" " * indent + f"{key}:", *emit(value, indent + 2)]
            else:
                lines.append(" " * indent + f"{key}: {scalar(value)}")
        return lines

    return "\n".join(emit(tree, 0)) + "\n"


def _trtllm_options(d: Deployment, record: RecipeRecord, notes: list[str]) -> dict[str, object]:
    """The extra LLM-API options (dotted YAML keys) beyond what trtllm-serve's flags set."""
    o = record.option
    options: dict[str, object] = {}
    if d.attention_dp:
        options[o("attention_dp")] = True
    if d.kv_bits == 8:
        options[o("kv_cache_dtype")] = record.values["kv_8bit"]
    if _speculating(d):
        options[o("speculative_type")] = record.values["draft_model"]
        options[o("speculative_tokens")] = d.draft_tokens
        options[o("speculative_model")] = _drafter_arg(d, notes)
    return options


def _trtllm(d: Deployment, record: RecipeRecord, memory_fraction: float) -> Recipe:
    notes: list[str] = []
    settings = _trtllm_settings(d, record, memory_fraction, notes)
    options = _trtllm_options(d, record, notes)
    launcher = record.launcher.split()
    if d.nodes > 1:
        launcher = [*record.values["mpi_launcher"].format(gpus=d.gpus).split(), *launcher]
        notes.append(f"{d.gpus} GPUs are {d.nodes} nodes of {d.hardware.node_size_gpus}: launch under MPI (or "
                     "Slurm srun) with one rank per GPU")
    parts = [*launcher, _model_arg(d, notes), record.flag("backend"), record.values["backend"]]
    for key, value in settings.items():
        parts += [record.flag(key), f"{value:g}" if isinstance(value, float) else str(value)]
    files = {}
    if options:
        files["extra_llm_api_options.yaml"] = _yaml(options)
        parts += [record.flag("extra_options"), "extra_llm_api_options.yaml"]
    _common_notes(d, record, memory_fraction, notes)
    return Recipe(f"TensorRT-LLM {record.version}: {d.describe()}", (record.engine,), (_shell(parts),), files,
                  tuple(notes), _flags_in(parts), tuple(options))


# ---------------------------------------------------------------- disaggregated pairs


def _background(label: str, command: str) -> str:
    """A labelled command started in the background, as a pair's processes run side by side."""
    return f"# {label}\n{command} &"


Pool = Sequence[tuple[Deployment, int | None]]  # deployments of one side of a pair, each with its replica count


def _label(d: Deployment, replicas: int | None, what: str) -> str:
    count = f" x {replicas}" if replicas and replicas > 1 else ""
    return f"{d.role} {what}{count} ({d.gpus} x {d.hardware.name} each, TP {d.tp}, PP {d.pp}, EP {d.ep})"


def _sglang_pair(pools: tuple[Pool, Pool], record: RecipeRecord, memory_fraction: float, notes: list[str],
                 title: str) -> Recipe:
    f = record.flag
    commands, tokens, router = [], [], [*record.values["pd_router"].split()]
    for pool, port, host in ((pools[0], 30000, "PREFILL_HOST"), (pools[1], 30001, "DECODE_HOST")):
        for index, (deployment, replicas) in enumerate(pool):
            parts = [*record.launcher.split(), record.model, _model_arg(deployment, notes),
                     *_sglang_args(deployment, record, memory_fraction, notes), f("disaggregation_mode"),
                     deployment.role, f("disaggregation_transfer_backend"), record.values["transfer_backend"],
                     f("port"), str(port)]
            nodes = _sglang_nodes(deployment, record, parts, notes)
            for rank, command in enumerate(nodes):
                where = f", node {rank} of {len(nodes)}" if len(nodes) > 1 else ""
                commands.append(_background(_label(deployment, replicas, "server") + where, _shell(command)))
                tokens += command
            suffix = f"{index + 1}" if len(pool) > 1 else ""
            router += [f("router_prefill" if deployment.role == "prefill" else "router_decode"),
                       f"http://${host}{suffix}:{port}"]
    commands.append("# router: the endpoint (one --prefill or --decode per server)\n" + _shell(router))
    tokens += router
    notes.append("SGLang PD: the prefill and decode servers run on separate GPUs (or nodes); the router is the "
                 "endpoint; KV caches move over NIXL (pip install nixl)")
    return Recipe(f"SGLang {record.version} PD disaggregation: {title}", ("sglang",), tuple(commands),
                  notes=tuple(notes), flags=_flags_in(tokens))


def _dynamo_pair(pools: tuple[Pool, Pool], engine: RecipeRecord, dynamo: RecipeRecord, memory_fraction: float,
                 notes: list[str], title: str) -> Recipe:
    f = dynamo.flag
    commands = [_background("frontend: the endpoint (port 8000)", _shell(dynamo.launcher.split()))]
    tokens = dynamo.launcher.split()
    files: dict[str, str] = {}
    options: list[str] = []
    workers = [(d, r, i, len(pool)) for pool in pools for i, (d, r) in enumerate(pool)]
    for number, (deployment, replicas, index, count) in enumerate(workers):
        if engine.engine == "vllm":
            parts = [*dynamo.values["vllm_worker"].split(), dynamo.model, _model_arg(deployment, notes),
                     *_vllm_args(deployment, engine, memory_fraction, notes), f("disaggregation_mode"),
                     deployment.role, f("kv_transfer_config"), dynamo.values["nixl_connector"]]
        else:
            settings = _trtllm_settings(deployment, engine, memory_fraction, notes)
            yaml_options = {engine.option(k): v for k, v in settings.items()}
            yaml_options.update(_trtllm_options(deployment, engine, notes))
            yaml_options[engine.option("cache_transceiver")] = engine.values["cache_transceiver"]
            name = f"{deployment.role}{index + 1 if count > 1 else ''}.yaml"
            files[name] = _yaml(yaml_options)
            options += list(yaml_options)
            parts = [*dynamo.values["trtllm_worker"].split(), f("trtllm_model"), _model_arg(deployment, notes),
                     f("trtllm_engine_args"), name, f("disaggregation_mode"), deployment.role]
        label = _label(deployment, replicas, "worker")
        last = number == len(workers) - 1
        commands.append(f"# {label}\n{_shell(parts)}" if last else _background(label, _shell(parts)))
        tokens += parts
    notes.append("NVIDIA Dynamo: the frontend is the endpoint; prefill and decode workers run on separate GPUs "
                 "(CUDA_VISIBLE_DEVICES or nodes), register with it and move KV caches over NIXL")
    return Recipe(f"NVIDIA Dynamo {dynamo.version} with {engine.engine} {engine.version} workers: {title}",
                  (dynamo.engine, engine.engine), tuple(commands), files, tuple(notes), _flags_in(tokens),
                  tuple(dict.fromkeys(options)))


def _memory(record: RecipeRecord, memory_fraction: float | None, source: str | None) -> tuple[float, str]:
    """The memory fraction a recipe emits and the note saying where it comes from."""
    if memory_fraction is None:
        return record.memory_fraction, f"memory fraction {record.memory_fraction:g}: " \
                                       f"{record.source('', 'memory_fraction')}"
    if not 0 < memory_fraction <= 1:
        raise RecipeError(f"memory fraction must be in (0, 1] (got {memory_fraction!r})")
    return memory_fraction, f"memory fraction {memory_fraction:g}: {source or 'given'}"


def disaggregated_pool_recipe(prefill: Pool, decode: Pool, engine: str, *, memory_fraction: float | None = None,
                              memory_source: str | None = None, note: str | None = None) -> Recipe:
    """A disaggregated pool: prefill and decode servers (each a deployment with its replica count), launched as
    SGLang PD for ``sglang`` and with NVIDIA Dynamo for ``vllm`` and ``trtllm``; ``note`` heads the notes."""
    record = get_recipe_record(engine)
    if not prefill or not decode:
        raise RecipeError("a disaggregated pool needs at least one prefill and one decode deployment")
    pools = (tuple((_with_role(d, "prefill"), r) for d, r in prefill),
             tuple((_with_role(d, "decode"), r) for d, r in decode))
    for pool in pools:
        for deployment, _ in pool:
            _check(deployment, record)
    fraction, memory_note = _memory(record, memory_fraction, memory_source)
    notes = [note, memory_note] if note else [memory_note]
    vendors = sorted({d.hardware.name.split()[0] for pool in pools for d, _ in pool})
    if len(vendors) > 1:
        notes.append(f"the pool mixes {' and '.join(vendors)} GPUs: the engines document KV-cache transfer between "
                     "GPUs of one vendor; check NIXL across them before relying on it")
    decode_first = pools[1][0][0]
    _common_notes(decode_first, record, fraction, notes)
    title = decode_first.describe()
    if record.engine == "sglang":
        return _sglang_pair(pools, record, fraction, notes, title)
    if record.engine in ("vllm", "trtllm"):
        return _dynamo_pair(pools, record, get_recipe_record("dynamo"), fraction, notes, title)
    raise RecipeError(f"no disaggregated recipe for engine '{engine}' (use sglang, vllm or trtllm)")


def disaggregated_recipe(prefill: Deployment, decode: Deployment, engine: str, *,
                         memory_fraction: float | None = None, memory_source: str | None = None,
                         prefill_per_decode: float | None = None) -> Recipe:
    """The prefill/decode pair of one disaggregated instance (``disaggregated_pool_recipe`` of one of each).
    ``prefill_per_decode``: prefill instances one decode instance needs, said in a note."""
    note = None
    if prefill_per_decode is not None:
        note = (f"run {prefill_per_decode:.2f} prefill instances per decode instance (the prefill pool the serving "
                "model sized)")
    return disaggregated_pool_recipe([(prefill, None)], [(decode, None)], engine, memory_fraction=memory_fraction,
                                     memory_source=memory_source, note=note)


def _with_role(d: Deployment, role: str) -> Deployment:
    return replace(d, role=role)


# ---------------------------------------------------------------- entry point


_BUILDERS = {"vllm": _vllm, "sglang": _sglang, "trtllm": _trtllm}


def recipe(deployment: Deployment, engine: str, *, memory_fraction: float | None = None,
           memory_source: str | None = None) -> Recipe:
    """The launch recipe of one instance on ``engine`` (``vllm``, ``sglang`` or ``trtllm``).

    Raises:
        RecipeError: the engine's documentation does not cover this deployment (the message says why).
        InstanceError: no record for the engine.
    """
    record = get_recipe_record(engine)
    if record.engine not in _BUILDERS:
        raise RecipeError(f"'{engine}' launches disaggregated pairs only; give --engine vllm, sglang or trtllm")
    _check(deployment, record)
    fraction, memory_note = _memory(record, memory_fraction, memory_source)
    made = _BUILDERS[record.engine](deployment, record, fraction)
    return replace(made, notes=(memory_note, *made.notes))


def _flags_in(tokens: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(t for t in tokens if t.startswith("-")))

"""Tests for ``instances.loader``: the built-in catalogue, user TOML files, Hugging Face configs and name lookup."""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path

import pytest

from infecon.formulations.errors import InstanceError
from infecon.formulations.params import parameter_counts
from infecon.formulations.specs import PROTOCOL_NAMES, HardwareSpec, ModelSpec
from infecon.instances.loader import (
    HARDWARE_DIR,
    MODELS_DIR,
    builtin_hardware_names,
    builtin_model_names,
    get_hardware,
    get_model,
    load_hardware,
    load_model,
)

MODEL_FILES = sorted(MODELS_DIR.glob("*.toml"))
HARDWARE_FILES = sorted(HARDWARE_DIR.glob("*.toml"))

# A small valid dense model, every field a bare value (a user's own file may omit sources).
BARE_MODEL = {
    "name": '"Tiny"', "n_layers": "2", "d_model": "64", "n_heads": "4", "n_kv_heads": "2", "d_head": "16",
    "d_ff": "128", "vocab_size": "1000",
}
BARE_MOE_EXTRA = {"n_routed_experts": "8", "n_active_experts": "2", "d_ff_expert": "128"}
BARE_HARDWARE = {
    "name": '"Toy GPU"', "flop_per_s_16bit": "1e15", "hbm_capacity_bytes": "80e9",
    "hbm_bandwidth_bytes_per_s": "3.3e12", "intra_node_bandwidth_bytes_per_s": "450e9",
    "inter_node_bandwidth_bytes_per_s": "50e9", "node_size_gpus": "8", "kernel_launch_latency_s": "4e-6",
    "price_usd_per_hour": "2.0",
}
BARE_PROTOCOL = {"base_latency_s": "6.8e-6", "intra_hop_latency_s": "0.6e-6", "inter_hop_latency_s": "5e-6",
                 "bandwidth_fraction": "0.5"}


def toml_text(fields: dict[str, str], protocols: dict[str, dict[str, str]] | None = None) -> str:
    """TOML source from ``{key: literal}`` and ``{protocol: {key: literal}}`` (literals already in TOML syntax)."""
    lines = [f"{key} = {literal}" for key, literal in fields.items()]
    for proto, entries in (protocols or {}).items():
        lines.append(f"[protocols.{proto}]")
        lines += [f"{key} = {literal}" for key, literal in entries.items()]
    return "\n".join(lines) + "\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def assert_names(exc: pytest.ExceptionInfo, path: Path, field: str) -> None:
    message = str(exc.value)
    assert str(path) in message, message
    assert field in message, message


class TestBuiltinFiles:
    @pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.stem)
    def test_model_loads(self, path):
        """Every built-in model file loads into a ModelSpec."""
        assert isinstance(load_model(path), ModelSpec)

    @pytest.mark.parametrize("path", HARDWARE_FILES, ids=lambda p: p.stem)
    def test_hardware_loads(self, path):
        """Every built-in hardware file loads, with all three NCCL protocols."""
        hw = load_hardware(path)
        assert isinstance(hw, HardwareSpec)
        assert set(hw.protocols) == set(PROTOCOL_NAMES)

    @pytest.mark.parametrize("path", MODEL_FILES + HARDWARE_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
    def test_every_field_has_a_source(self, path):
        """Every field of a built-in file, protocol tables included, is ``{ value, source }``, the source non-empty."""
        data = tomllib.loads(path.read_text())
        entries = [(key, raw) for key, raw in data.items() if key != "protocols"]
        for proto, table in data.get("protocols", {}).items():
            entries += [(f"protocols.{proto}.{key}", raw) for key, raw in table.items()]
        assert entries
        for key, raw in entries:
            assert isinstance(raw, dict) and set(raw) == {"value", "source"}, f"{path.name}: '{key}' has no source"
            assert isinstance(raw["source"], str) and raw["source"].strip(), f"{path.name}: '{key}' has an empty source"

    @pytest.mark.parametrize("path", MODEL_FILES + HARDWARE_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
    def test_loaded_sources_are_the_files(self, path):
        """The loaded spec records the file's source for each field, never the file-name fallback."""
        spec = load_model(path) if path.parent == MODELS_DIR else load_hardware(path)
        assert spec.sources
        assert all(source != path.name for source in spec.sources.values())


class TestUserToml:
    def test_bare_values_load_with_the_file_as_source(self, tmp_path):
        """A user model with bare values loads, each field's source being the file name."""
        path = write(tmp_path, "tiny.toml", toml_text(BARE_MODEL))
        model = load_model(path)
        assert (model.name, model.n_layers, model.d_model, model.n_kv_heads) == ("Tiny", 2, 64, 2)
        assert set(model.sources) == set(BARE_MODEL)
        assert set(model.sources.values()) == {"tiny.toml"}

    def test_bare_hardware_loads(self, tmp_path):
        """A user hardware file with bare values (protocol tables too) loads."""
        path = write(tmp_path, "toy.toml", toml_text(BARE_HARDWARE, {"LL": BARE_PROTOCOL}))
        hw = load_hardware(path)
        assert hw.hbm_capacity_bytes == 80e9
        assert hw.protocols["LL"].bandwidth_fraction == 0.5
        assert hw.sources["protocols.LL.base_latency_s"] == "toy.toml"

    def test_malformed_toml(self, tmp_path):
        """A TOML syntax error names the file."""
        path = write(tmp_path, "broken.toml", 'name = "x"\nn_layers = = 3\n')
        with pytest.raises(InstanceError, match="malformed TOML") as exc:
            load_model(path)
        assert str(path) in str(exc.value)

    def test_not_utf8(self, tmp_path):
        """A binary file given as a model is an InstanceError naming it, not a UnicodeDecodeError."""
        path = tmp_path / "weights.toml"
        path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
        with pytest.raises(InstanceError) as exc:
            load_model(path)
        assert str(path) in str(exc.value)

    def test_missing_file(self, tmp_path):
        """A path that does not exist names the file."""
        path = tmp_path / "absent.toml"
        with pytest.raises(InstanceError, match="not found") as exc:
            load_model(path)
        assert str(path) in str(exc.value)

    @pytest.mark.parametrize(("change", "field"), [
        ({"n_layer": "32"}, "n_layer"),                       # typo of n_layers: unknown, never ignored
        ({"n_layers": None}, "n_layers"),                     # missing required field
        ({"d_model": "-64"}, "d_model"),                      # negative
        ({"n_layers": "0"}, "n_layers"),                      # zero
        ({"vocab_size": '"1000"'}, "vocab_size"),             # wrong type: a string
        ({"n_heads": "4.0"}, "n_heads"),                      # wrong type: a float for a count
        ({"ffn_gated": "1"}, "ffn_gated"),                    # wrong type: an int for a bool
        ({"n_heads": "6", "n_kv_heads": "4"}, "n_heads"),     # heads not a multiple of KV heads
        ({"attention": '"sliding"'}, "attention"),            # not one of the kinds
        ({"d_model": '{ value = 64, sorce = "x" }'}, "d_model"),  # a typo inside a { value, source } table
    ], ids=["unknown-key", "missing", "negative", "zero", "string", "float", "bool", "heads", "attention",
            "table-typo"])
    def test_bad_model_field(self, tmp_path, change, field):
        """Each bad model field raises an InstanceError naming file and field."""
        fields = {**BARE_MODEL, **change}
        path = write(tmp_path, "bad.toml", toml_text({k: v for k, v in fields.items() if v is not None}))
        with pytest.raises(InstanceError) as exc:
            load_model(path)
        assert_names(exc, path, field)

    @pytest.mark.parametrize(("change", "field"), [
        ({"n_active_experts": "9"}, "n_active_experts"),      # more active than routed experts
        ({"n_active_experts": "0"}, "n_active_experts"),      # an MoE must route to at least one
        ({"d_ff_expert": "0"}, "d_ff_expert"),
        ({"n_dense_layers": "3"}, "n_dense_layers"),          # more dense layers than layers
    ], ids=["too-many-active", "none-active", "no-expert-width", "dense-layers"])
    def test_bad_moe(self, tmp_path, change, field):
        """An inconsistent MoE raises an InstanceError naming file and field."""
        path = write(tmp_path, "moe.toml", toml_text({**BARE_MODEL, **BARE_MOE_EXTRA, **change}))
        with pytest.raises(InstanceError) as exc:
            load_model(path)
        assert_names(exc, path, field)

    def test_good_moe(self, tmp_path):
        """The MoE fixture itself is valid, so the failures above come from the one changed field."""
        model = load_model(write(tmp_path, "moe.toml", toml_text({**BARE_MODEL, **BARE_MOE_EXTRA})))
        assert model.is_moe and model.n_moe_layers == 2

    @pytest.mark.parametrize(("change", "protocols", "field"), [
        ({}, {"NVLS": BARE_PROTOCOL}, "NVLS"),                                   # not LL/LL128/Simple
        ({}, {"LL": {**BARE_PROTOCOL, "base_latency": "1e-6"}}, "base_latency"),  # typo inside a protocol
        ({}, {"LL": {k: v for k, v in BARE_PROTOCOL.items() if k != "bandwidth_fraction"}},
         "protocols.LL.bandwidth_fraction"),
        ({}, {"LL": {**BARE_PROTOCOL, "bandwidth_fraction": "1.5"}}, "protocols.LL.bandwidth_fraction"),
        ({"hbm_capacity_bytes": "-8e10"}, {"LL": BARE_PROTOCOL}, "hbm_capacity_bytes"),
        ({"price_usd_per_hour": "0"}, {"LL": BARE_PROTOCOL}, "price_usd_per_hour"),
        ({"hbm_capacity_bytes": "inf"}, {"LL": BARE_PROTOCOL}, "hbm_capacity_bytes"),
        ({"price_usd_per_hour": "nan"}, {"LL": BARE_PROTOCOL}, "price_usd_per_hour"),
        ({"hbm_bandwidth_bytes_per_s": '"3.3 TB/s"'}, {"LL": BARE_PROTOCOL}, "hbm_bandwidth_bytes_per_s"),
        ({"node_size_gpus": "8.5"}, {"LL": BARE_PROTOCOL}, "node_size_gpus"),
        ({"flop_efficiency": "1.2"}, {"LL": BARE_PROTOCOL}, "flop_efficiency"),
        ({"hbm_capacity_byte": "80e9"}, {"LL": BARE_PROTOCOL}, "hbm_capacity_byte"),
        ({"kernel_launch_latency_s": None}, {"LL": BARE_PROTOCOL}, "kernel_launch_latency_s"),
        ({}, {}, "protocols"),
    ], ids=["protocol-name", "protocol-key", "protocol-missing", "protocol-fraction", "negative", "zero-price",
            "inf", "nan", "string", "float-count", "efficiency", "unknown-key", "missing", "no-protocols"])
    def test_bad_hardware_field(self, tmp_path, change, protocols, field):
        """Each bad hardware field raises an InstanceError naming file and field."""
        fields = {k: v for k, v in {**BARE_HARDWARE, **change}.items() if v is not None}
        path = write(tmp_path, "hw.toml", toml_text(fields, protocols))
        with pytest.raises(InstanceError) as exc:
            load_hardware(path)
        assert_names(exc, path, field)

    def test_unknown_protocol_names_its_table(self, tmp_path):
        """An unknown protocol is reported by its full path in the file, 'protocols.NVLS'."""
        path = write(tmp_path, "hw.toml", toml_text(BARE_HARDWARE, {"LL": BARE_PROTOCOL, "NVLS": BARE_PROTOCOL}))
        with pytest.raises(InstanceError, match=r"'protocols\.NVLS'.*LL, LL128, Simple"):
            load_hardware(path)


# config.json files in the shape Hugging Face publishes them (only the fields the loader reads, plus noise).
LLAMA_3_8B_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256,
    "hidden_act": "silu", "tie_word_embeddings": False, "rope_theta": 500000.0, "torch_dtype": "bfloat16",
}
MIXTRAL_8X7B_CONFIG = {
    "architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "hidden_size": 4096, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 32000,
    "hidden_act": "silu", "tie_word_embeddings": False, "num_local_experts": 8, "num_experts_per_tok": 2,
}
DEEPSEEK_V3_CONFIG = {
    "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "hidden_size": 7168,
    "num_hidden_layers": 61, "num_attention_heads": 128, "num_key_value_heads": 128, "intermediate_size": 18432,
    "moe_intermediate_size": 2048, "vocab_size": 129280, "hidden_act": "silu", "tie_word_embeddings": False,
    "n_routed_experts": 256, "num_experts_per_tok": 8, "n_shared_experts": 1, "first_k_dense_replace": 3,
    "q_lora_rank": 1536, "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
    "num_nextn_predict_layers": 1,
}


def write_config(tmp_path: Path, config: dict, folder: str = "model") -> Path:
    directory = tmp_path / folder
    directory.mkdir()
    path = directory / "config.json"
    path.write_text(json.dumps(config))
    return path


class TestHuggingFaceConfig:
    def test_llama(self, tmp_path):
        """A Llama-3-8B config maps field by field and equals the built-in llama_3_8b."""
        model = load_model(write_config(tmp_path, LLAMA_3_8B_CONFIG))
        assert (model.n_layers, model.d_model, model.n_heads, model.n_kv_heads) == (32, 4096, 32, 8)
        assert (model.d_head, model.d_ff, model.vocab_size) == (128, 14336, 128256)
        assert model.ffn_gated and not model.tied_embeddings and not model.is_moe
        assert model.attention == "standard"
        builtin = get_model("llama_3_8b")
        assert dataclasses.replace(model, name=builtin.name) == builtin

    def test_llama_parameter_count(self, tmp_path):
        """The mapped Llama config has exactly the built-in llama_3_8b's parameter count (about 8.03e9)."""
        counts = parameter_counts(load_model(write_config(tmp_path, LLAMA_3_8B_CONFIG)))
        builtin = parameter_counts(get_model("llama_3_8b"))
        assert counts.total == builtin.total
        assert counts.active == builtin.active
        assert 8.0e9 < counts.total < 8.1e9  # Meta reports 8.03B

    def test_mixtral(self, tmp_path):
        """A Mixtral config maps to an 8-expert top-2 MoE equal to the built-in mixtral_8x7b."""
        model = load_model(write_config(tmp_path, MIXTRAL_8X7B_CONFIG))
        assert (model.n_routed_experts, model.n_active_experts, model.n_shared_experts) == (8, 2, 0)
        assert (model.d_ff_expert, model.n_dense_ffn_layers, model.n_moe_layers) == (14336, 0, 32)
        builtin = get_model("mixtral_8x7b")
        assert dataclasses.replace(model, name=builtin.name) == builtin

    def test_deepseek_v3(self, tmp_path):
        """A DeepSeek-V3 config maps to MLA attention and 256 routed experts, equal to the built-in."""
        model = load_model(write_config(tmp_path, DEEPSEEK_V3_CONFIG))
        assert model.attention == "mla"
        assert (model.kv_lora_rank, model.q_lora_rank, model.qk_rope_head_dim, model.v_head_dim) == (512, 1536, 64, 128)
        assert (model.n_routed_experts, model.n_active_experts, model.n_shared_experts) == (256, 8, 1)
        assert (model.d_ff_expert, model.n_dense_ffn_layers, model.d_head) == (2048, 3, 128)
        builtin = get_model("deepseek_v3")
        assert dataclasses.replace(model, name=builtin.name) == builtin

    def test_deepseek_v3_resaved_by_transformers(self, tmp_path):
        """transformers saves DeepSeek-V3's head_dim as the RoPE width (64); d_head must stay qk_nope_head_dim."""
        model = load_model(write_config(tmp_path, {**DEEPSEEK_V3_CONFIG, "head_dim": 64}))
        assert model.d_head == 128

    def test_name_and_sources(self, tmp_path):
        """The name comes from the config, and every field's source is the config file."""
        model = load_model(write_config(tmp_path, {**LLAMA_3_8B_CONFIG, "_name_or_path": "meta-llama/Meta-Llama-3-8B"}))
        assert model.name == "meta-llama/Meta-Llama-3-8B"
        assert set(model.sources.values()) == {"config.json"}

    def test_malformed_json(self, tmp_path):
        """Malformed JSON raises an InstanceError naming the file."""
        path = tmp_path / "config.json"
        path.write_text('{"hidden_size": 4096,')
        with pytest.raises(InstanceError, match="malformed JSON") as exc:
            load_model(path)
        assert str(path) in str(exc.value)

    def test_missing_hidden_size(self, tmp_path):
        """A config without hidden_size names the file and the missing key."""
        config = {k: v for k, v in LLAMA_3_8B_CONFIG.items() if k != "hidden_size"}
        path = write_config(tmp_path, config)
        with pytest.raises(InstanceError) as exc:
            load_model(path)
        assert_names(exc, path, "hidden_size")

    def test_not_an_object(self, tmp_path):
        """A JSON list is not a config."""
        path = tmp_path / "config.json"
        path.write_text("[1, 2]")
        with pytest.raises(InstanceError) as exc:
            load_model(path)
        assert str(path) in str(exc.value)

    def test_unreadable(self, tmp_path):
        """A directory or binary file named like a config is an InstanceError, not an OSError or UnicodeDecodeError."""
        directory = tmp_path / "dir.json"
        directory.mkdir()
        binary = tmp_path / "binary.json"
        binary.write_bytes(b"\xff\xfe\x00\x89")
        for path in (directory, binary):
            with pytest.raises(InstanceError) as exc:
                load_model(path)
            assert str(path) in str(exc.value)

    def test_inconsistent_config(self, tmp_path):
        """An impossible config (more experts per token than experts) fails like a TOML would."""
        path = write_config(tmp_path, {**MIXTRAL_8X7B_CONFIG, "num_experts_per_tok": 9})
        with pytest.raises(InstanceError) as exc:
            load_model(path)
        assert_names(exc, path, "n_active_experts")


class TestNameResolution:
    @pytest.mark.parametrize("name", ["h100", "H100", "h100_sxm", "H100_SXM", "h100-sxm", " H100 SXM "])
    def test_hardware_aliases(self, name):
        """Hardware names are case- and separator-insensitive, and 'h100' means h100_sxm (a built-in name also
        brings its measured kernel curves, instances/kernels/, which the file alone does not have)."""
        found = get_hardware(name)
        bare = dataclasses.replace(found, kernel_curves={}, measured_kernels={})
        assert bare == load_hardware(HARDWARE_DIR / "h100_sxm.toml")
        assert found.kernel_curves == get_hardware("h100_sxm").kernel_curves != {}

    @pytest.mark.parametrize("name", ["Llama-3-70B", "llama_3_70b", "llama-3-70b", "LLAMA 3 70B"])
    def test_model_names(self, name):
        """Model names are case- and separator-insensitive."""
        assert get_model(name) == load_model(MODELS_DIR / "llama_3_70b.toml")

    def test_dotted_version(self):
        """A dotted version resolves like the file stem ('llama-3.1-405b' is llama_3_1_405b)."""
        assert get_model("llama-3.1-405b") == load_model(MODELS_DIR / "llama_3_1_405b.toml")

    @pytest.mark.parametrize(("lookup", "kind", "names"), [
        (get_model, "model", builtin_model_names),
        (get_hardware, "hardware", builtin_hardware_names),
    ], ids=["model", "hardware"])
    def test_unknown_lists_builtins(self, lookup, kind, names):
        """An unknown name raises an InstanceError naming it and listing every built-in."""
        with pytest.raises(InstanceError) as exc:
            lookup("gpt-5-ultra")
        message = str(exc.value)
        assert f"unknown {kind} 'gpt-5-ultra'" in message
        assert all(name in message for name in names())

    def test_catalogue(self):
        """The catalogue lists one name per file."""
        assert builtin_model_names() == [p.stem for p in MODEL_FILES]
        assert builtin_hardware_names() == [p.stem for p in HARDWARE_FILES]


# The measured serving data (issue 8) names its models and hardware by file stem. These are the names it
# uses; the development CSV sits next to the repository (../shared/measured/), and when it is there the
# test below also reads it, so a new name in the data that the catalogue lacks fails here.
SERVING_DATA_MODELS = ("deepseek_v3", "falcon_180b", "llama_2_70b", "llama_2_7b", "llama_3_1_405b", "llama_3_70b")
SERVING_DATA_HARDWARE = ("h100_sxm", "h200", "mi300x")
SERVING_DEV_CSV = Path(__file__).resolve().parents[1].parent / "shared" / "measured" / "serving_dev.csv"
NEW_MODELS = ("llama_2_7b", "llama_2_70b", "falcon_180b")
NEW_HARDWARE = ("mi325x", "mi355x", "b300", "gb200_nvl72", "gb300_nvl72", "h20", "l40s", "gaudi3", "tpu_v5e", "tpu_v6e")


class TestServingCatalogue:
    @pytest.mark.parametrize("name", SERVING_DATA_MODELS)
    def test_data_model_resolves(self, name):
        """Every model the measured serving data names is a built-in file of that stem."""
        assert get_model(name) == load_model(MODELS_DIR / f"{name}.toml")

    @pytest.mark.parametrize("name", SERVING_DATA_HARDWARE)
    def test_data_hardware_resolves(self, name):
        """Every accelerator the measured serving data names is a built-in file of that stem (plus its curves)."""
        bare = dataclasses.replace(get_hardware(name), kernel_curves={}, measured_kernels={})
        assert bare == load_hardware(HARDWARE_DIR / f"{name}.toml")

    def test_data_file_names_are_covered(self):
        """The development CSV's model and hardware columns use only the names above (read when present)."""
        if not SERVING_DEV_CSV.exists():
            pytest.skip(f"{SERVING_DEV_CSV} is not next to this checkout; the name lists above are still tested")
        import csv

        with open(SERVING_DEV_CSV, newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert rows
        assert {row["model"] for row in rows} <= set(SERVING_DATA_MODELS)
        assert {row["hardware"] for row in rows} <= set(SERVING_DATA_HARDWARE)

    @pytest.mark.parametrize(("alias", "stem"), [
        ("llama-2-70b", "llama_2_70b"), ("Llama-2-70B", "llama_2_70b"), ("Llama-2-7B", "llama_2_7b"),
        ("llama 2 7b", "llama_2_7b"), ("Falcon-180B", "falcon_180b"), ("falcon_180b", "falcon_180b"),
    ])
    def test_model_aliases(self, alias, stem):
        """Published names ('Llama-2-70B', 'Falcon-180B') resolve like their file stems."""
        assert get_model(alias) == load_model(MODELS_DIR / f"{stem}.toml")

    @pytest.mark.parametrize(("alias", "stem"), [
        ("MI325X", "mi325x"), ("mi355x", "mi355x"), ("B300", "b300"), ("GB200 NVL72", "gb200_nvl72"),
        ("gb200", "gb200_nvl72"), ("GB300 NVL72", "gb300_nvl72"), ("gb300", "gb300_nvl72"),
        ("H20", "h20"), ("L40S", "l40s"), ("Gaudi 3", "gaudi3"), ("gaudi3", "gaudi3"),
        ("TPU v5e", "tpu_v5e"), ("tpu-v6e", "tpu_v6e"), ("trillium", "tpu_v6e"),
    ])
    def test_hardware_aliases(self, alias, stem):
        """Marketing names ('GB200 NVL72', 'Gaudi 3', 'TPU v5e') resolve to their files."""
        found = dataclasses.replace(get_hardware(alias), kernel_curves={}, measured_kernels={})
        assert found == load_hardware(HARDWARE_DIR / f"{stem}.toml")

    @pytest.mark.parametrize("name", NEW_MODELS + NEW_HARDWARE)
    def test_new_files_exist(self, name):
        """Each model and accelerator issue 8 asks for is in the catalogue (and so in the sourced-fields tests)."""
        assert name in builtin_model_names() + builtin_hardware_names()

    def test_llama_2_7b_count_by_hand(self):
        """Llama-2-7B counts 6,738,149,376 parameters: the published 6,738,415,616 less its 65 RMSNorm vectors."""
        # attention 4 x 4096^2 = 67,108,864 (MHA: K and V as wide as Q); FFN 3 x 4096 x 11008 = 135,266,304;
        # 32 layers x 202,375,168 = 6,476,005,376; embedding + unembedding 2 x 32000 x 4096 = 262,144,000.
        # Published (safetensors) 6,738,415,616 - 6,738,149,376 = 266,240 = (2 x 32 + 1) x 4096 norm weights.
        assert parameter_counts(get_model("llama_2_7b")).total == 6_738_149_376

    def test_llama_2_70b_count_by_hand(self):
        """Llama-2-70B counts 68,975,329,280 parameters: the published 68,976,648,192 less its 161 RMSNorm vectors."""
        # attention 2 x 8192^2 + 2 x 8192 x (8 x 128) = 150,994,944; FFN 3 x 8192 x 28672 = 704,643,072;
        # 80 layers x 855,638,016 = 68,451,041,280; embedding + unembedding 2 x 32000 x 8192 = 524,288,000.
        # Published 68,976,648,192 - 68,975,329,280 = 1,318,912 = (2 x 80 + 1) x 8192 norm weights.
        assert parameter_counts(get_model("llama_2_70b")).total == 68_975_329_280

    def test_falcon_180b_count_by_hand(self):
        """Falcon-180B counts 179,517,784,064 parameters: the checkpoint's 179.523e9 less its layer norms."""
        # attention 2 x 14848^2 + 2 x 14848 x (8 x 64) = 456,130,560; GELU MLP 2 x 14848 x 59392 = 1,763,704,832;
        # 80 layers x 2,219,835,392 = 177,586,831,360; embedding and separate lm_head 2 x 65024 x 14848
        # = 1,930,952,704. The safetensors total 179.523e9 (3 decimals) exceeds this by ~5.2e6, the
        # (2 x 80 + 1) layer norms' weights and biases (4.78e6) plus the rounding of the published figure.
        counts = parameter_counts(get_model("falcon_180b"))
        assert counts.total == 179_517_784_064
        assert counts.total == pytest.approx(179.523e9, abs=6e6)

    def test_architectures(self):
        """The attention and FFN shapes that matter for KV size and step time are the configs' own."""
        llama_7b, llama_70b, falcon = (get_model(n) for n in NEW_MODELS)
        assert (llama_7b.n_heads, llama_7b.n_kv_heads, llama_7b.ffn_gated) == (32, 32, True)     # MHA, SwiGLU
        assert (llama_70b.n_heads, llama_70b.n_kv_heads, llama_70b.ffn_gated) == (64, 8, True)   # GQA 8, SwiGLU
        assert (falcon.n_heads, falcon.n_kv_heads, falcon.d_head) == (232, 8, 64)               # multi-group
        assert falcon.parallel_attention and not falcon.ffn_gated and not falcon.tied_embeddings
        assert not llama_7b.parallel_attention and not llama_70b.parallel_attention

    def test_scale_up_domains(self):
        """GB200 NVL72 is one 72-GPU NVLink domain and a TPU v5e/v6e pod one 256-chip ICI domain."""
        assert get_hardware("gb200_nvl72").node_size_gpus == 72
        assert get_hardware("gb300_nvl72").node_size_gpus == 72
        assert get_hardware("tpu_v5e").node_size_gpus == 256
        assert get_hardware("tpu_v6e").node_size_gpus == 256

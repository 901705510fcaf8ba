"""Train statespace's embedded default model end to end: tokenizer, model, model card, parity fixture.

A small dense Granite 4.0 hybrid (GraniteMoeHybridForCausalLM: Mamba-2 layers with one attention layer)
trained on the King James Bible. Everything runs in one process:

  1. read the corpus (tools/train-default-model/corpus.txt.xz, checked against corpus.source.txt),
     split it into train and validation verses (blocks of 100 verses, every 20th block held out);
  2. train a byte-level BPE tokenizer (Hugging Face `tokenizers`) on the training verses;
  3. train the model with a plain PyTorch loop (AdamW, bf16 autocast, f32 master weights);
  4. save it in f16 with save_pretrained (safetensors), plus tokenizer files and generation config;
  5. reload the saved folder in float32 on the CPU, eager attention, and record greedy continuations
     and logits with transformers' own generate into reference.json (the parity fixture);
  6. write the model card README.md and train-log.json.

usage (GPU machine, from the repo root):
  python3 tools/train-default-model/train.py --out $OUT/default [--steps N | --time-budget SECONDS]
"""
import argparse
import hashlib
import json
import lzma
import math
import os
import platform
import sys
import time
import warnings

# cuBLAS needs this before CUDA starts to have deterministic matmuls (torch.use_deterministic_algorithms).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
import tokenizers  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import GenerationConfig, GraniteMoeHybridConfig, GraniteMoeHybridForCausalLM  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SPECIAL = "<|endoftext|>"
PROMPTS = ["In the beginning", "And the LORD said unto Moses,", "Blessed are the"]
CARD_PROMPTS = PROMPTS + ["Jesus wept", "The LORD is my shepherd", "For God so loved the world,"]
KEEP_FILES = {
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "README.md",
    "reference.json",
    "train-log.json",
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", default=os.path.join(HERE, "corpus.txt.xz"))
    p.add_argument("--out", default=os.path.join(os.environ.get("OUT", "/tmp/out"), "default"))
    p.add_argument("--seed", type=int, default=1611)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--min-lr", type=float, default=2e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=0, help="optimizer steps; 0 = choose from --time-budget")
    p.add_argument("--time-budget", type=float, default=160.0, help="seconds of training when --steps is 0")
    p.add_argument("--max-seconds", type=float, default=330.0, help="hard stop for the training loop")
    p.add_argument("--eval-every", type=int, default=50, help="validation every N steps; the best step is saved")
    return p.parse_args()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_corpus(path: str) -> str:
    raw = open(path, "rb").read()
    data = lzma.decompress(raw) if path.endswith(".xz") else raw
    digest = sha256_bytes(data)
    source = os.path.join(HERE, "corpus.source.txt")
    if os.path.exists(source):
        expected = open(source).read().split("corpus.txt:")[1].split("sha256")[1].split()[0]
        if digest != expected:
            sys.exit(f"train: corpus sha256 {digest} does not match corpus.source.txt ({expected})")
    return data.decode("ascii")


def split_verses(text: str):
    """Blocks of 100 consecutive verses; every 20th block (5%) is validation."""
    verses = text.split("\n")
    if verses[-1] == "":
        verses.pop()
    train = [v for i, v in enumerate(verses) if (i // 100) % 20 != 19]
    val = [v for i, v in enumerate(verses) if (i // 100) % 20 == 19]
    return verses, train, val


def train_tokenizer(train_verses, vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[SPECIAL],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([v + "\n" for v in train_verses], trainer=trainer, length=len(train_verses))
    assert tok.get_vocab_size() == vocab_size, tok.get_vocab_size()
    assert tok.token_to_id(SPECIAL) == 0
    return tok


def encode_stream(tok: Tokenizer, verses) -> torch.Tensor:
    # The pre-tokenizer always splits before and after "\n", so encoding verse by verse gives the
    # same ids as encoding the joined text.
    ids = []
    for enc in tok.encode_batch([v + "\n" for v in verses], add_special_tokens=False):
        ids.extend(enc.ids)
    return torch.tensor(ids, dtype=torch.int64)


def make_config(vocab_size: int) -> GraniteMoeHybridConfig:
    layer_types = ["linear_attention"] * 8
    layer_types[3] = "full_attention"
    return GraniteMoeHybridConfig(
        vocab_size=vocab_size,
        hidden_size=256,
        intermediate_size=512,
        shared_intermediate_size=512,
        num_hidden_layers=8,
        layer_types=layer_types,
        num_attention_heads=4,
        num_key_value_heads=2,
        attention_multiplier=1.0 / math.sqrt(64),  # head_dim 64: the usual 1/sqrt(d) softmax scale
        embedding_multiplier=1.0,
        residual_multiplier=1.0,
        logits_scaling=1.0,
        position_embedding_type="rope",
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        max_position_embeddings=2048,
        mamba_n_heads=8,
        mamba_d_head=64,
        mamba_d_state=64,
        mamba_n_groups=1,
        mamba_d_conv=4,
        mamba_expand=2,
        mamba_chunk_size=64,
        mamba_conv_bias=True,
        mamba_proj_bias=False,
        num_local_experts=0,
        rms_norm_eps=1e-6,
        hidden_act="silu",
        initializer_range=0.02,
        tie_word_embeddings=True,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=None,
        use_cache=True,
    )


def lr_at(step: int, total: int, args) -> float:
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = min(1.0, (step - args.warmup) / max(1, total - args.warmup))
    return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1.0 + math.cos(math.pi * progress))


def windows(stream: torch.Tensor, seq: int) -> torch.Tensor:
    n = (len(stream) - 1) // seq
    starts = torch.arange(n) * seq
    return stream[starts[:, None] + torch.arange(seq + 1)]


@torch.no_grad()
def mean_loss(model, wins: torch.Tensor, batch: int, device) -> float:
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(wins), batch):
        w = wins[i : i + batch].to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(input_ids=w[:, :-1], use_cache=False).logits
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1), reduction="sum")
        total += loss.item()
        count += w[:, 1:].numel()
    model.train()
    return total / count


def save_tokenizer(tok: Tokenizer, out: str):
    try:
        from transformers import PreTrainedTokenizerFast as FastTokenizer
    except ImportError:  # transformers 5 renamed the class; the alias may go away
        from transformers import TokenizersBackend as FastTokenizer
    hf_tok = FastTokenizer(
        tokenizer_object=tok,
        bos_token=SPECIAL,
        eos_token=SPECIAL,
        pad_token=SPECIAL,
        model_max_length=2048,
        clean_up_tokenization_spaces=False,
    )
    hf_tok.save_pretrained(out)
    return hf_tok


def main():
    args = parse_args()
    t_start = time.time()
    os.makedirs(args.out, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"torch {torch.__version__} transformers {transformers.__version__} tokenizers {tokenizers.__version__} "
          f"device {torch.cuda.get_device_name(0) if device.type == 'cuda' else 'cpu'}", flush=True)

    determinism_warnings = set()
    show = warnings.showwarning

    def record_warning(message, category, filename, lineno, file=None, line=None):
        text = str(message)
        if "determinis" in text.lower():
            determinism_warnings.add(text.splitlines()[0][:300])
        show(message, category, filename, lineno, file, line)

    warnings.showwarning = record_warning
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    # 1. corpus
    text = read_corpus(args.corpus)
    verses, train_verses, val_verses = split_verses(text)
    print(f"corpus: {len(text)} bytes, {len(verses)} verses: {len(train_verses)} train, {len(val_verses)} val", flush=True)

    # 2. tokenizer
    t0 = time.time()
    tok = train_tokenizer(train_verses, args.vocab)
    hf_tok = save_tokenizer(tok, args.out)
    train_ids = encode_stream(tok, train_verses)
    val_ids = encode_stream(tok, val_verses)
    tokenizer_seconds = time.time() - t0
    print(f"tokenizer: vocab {tok.get_vocab_size()}, train {len(train_ids)} tokens, val {len(val_ids)} tokens, "
          f"{len(text) / (len(train_ids) + len(val_ids)):.2f} bytes/token, {tokenizer_seconds:.1f}s", flush=True)
    from transformers import AutoTokenizer

    auto_tok = AutoTokenizer.from_pretrained(args.out)
    for prompt in PROMPTS:
        for t in (hf_tok, auto_tok):
            got = t(prompt)["input_ids"]
            if got != tok.encode(prompt).ids:
                sys.exit(f"train: {type(t).__name__} encodes {prompt!r} as {got}, tokenizers as {tok.encode(prompt).ids}")
    print(f"tokenizer reloads as {type(auto_tok).__name__}; {PROMPTS[0]!r} -> {tok.encode(PROMPTS[0]).tokens}", flush=True)

    # 3. model
    config = make_config(args.vocab)
    torch.manual_seed(args.seed)
    try:  # same attention code as the reference; sdpa's fused backward is not deterministic
        config._attn_implementation = "eager"
    except Exception as e:  # noqa: BLE001
        print(f"note: config._attn_implementation not settable ({e!r})", flush=True)
    model = GraniteMoeHybridForCausalLM(config).float()
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    assert model.config._attn_implementation == "eager", model.config._attn_implementation
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params} parameters", flush=True)
    model.to(device).train()
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (decay if p.ndim >= 2 and "conv1d" not in name else no_decay).append(p)
    optim = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr, betas=(0.9, 0.95), eps=1e-8, fused=device.type == "cuda",
    )
    train_gpu = train_ids.to(device)
    offsets = torch.arange(args.seq + 1, device=device)
    gen = torch.Generator().manual_seed(args.seed + 1)
    val_wins = windows(val_ids, args.seq)
    eval_train_wins = windows(train_ids, args.seq)[torch.randperm((len(train_ids) - 1) // args.seq, generator=torch.Generator().manual_seed(7))[: len(val_wins)]]

    total_steps = args.steps if args.steps > 0 else None
    history, evals = [], []
    calib_from, calib_steps = 5, 25
    step_time = None
    t_train = time.time()
    recent = []
    step = 0
    stopped_early = False
    best = {"val_loss": float("inf"), "step": 0, "state": None}

    def evaluate_and_keep_best():
        v = mean_loss(model, val_wins, args.batch, device)
        evals.append({"step": step, "val_loss": round(v, 4)})
        if v < best["val_loss"]:
            best.update(val_loss=v, step=step, state={k: t.detach().to("cpu", copy=True) for k, t in model.state_dict().items()})
        return v
    while total_steps is None or step < total_steps:
        if step == calib_from:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t_calib = time.time()
        if step == calib_steps:
            if device.type == "cuda":
                torch.cuda.synchronize()
            step_time = (time.time() - t_calib) / (calib_steps - calib_from)
            if total_steps is None:
                chosen = int(args.time_budget / step_time) // 50 * 50
                total_steps = max(200, min(20000, chosen))
                print(f"calibration: {step_time * 1000:.1f} ms/step -> {total_steps} steps", flush=True)
            if total_steps <= step:
                break
        lr = lr_at(step, total_steps or 10**9, args)
        for group in optim.param_groups:
            group["lr"] = lr
        starts = torch.randint(0, len(train_ids) - args.seq - 1, (args.batch,), generator=gen).to(device)
        batch = train_gpu[starts[:, None] + offsets]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(input_ids=batch[:, :-1], use_cache=False).logits
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        optim.zero_grad(set_to_none=True)
        recent.append(loss.detach())
        step += 1
        if step % 50 == 0 or step == total_steps:
            mean_recent = torch.stack(recent).mean().item()
            recent = []
            history.append({"step": step, "loss": round(mean_recent, 4), "lr": lr, "grad_norm": round(grad_norm.item(), 4),
                            "seconds": round(time.time() - t_train, 1)})
            print(f"step {step}/{total_steps} loss {mean_recent:.4f} lr {lr:.2e} gnorm {grad_norm.item():.3f} "
                  f"{time.time() - t_train:.0f}s", flush=True)
        if (args.eval_every > 0 and step % args.eval_every == 0) or step == total_steps:
            v = evaluate_and_keep_best()
            print(f"eval step {step}: val loss {v:.4f}", flush=True)
        if time.time() - t_train > args.max_seconds:
            print(f"train: hard stop after {args.max_seconds}s at step {step}", flush=True)
            stopped_early = True
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    train_seconds = time.time() - t_train
    peak_gib = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0
    print(f"peak GPU memory {peak_gib:.1f} GiB", flush=True)
    if not evals or evals[-1]["step"] != step:
        evaluate_and_keep_best()
    last_step_val = evals[-1]["val_loss"]
    last_step_train = mean_loss(model, eval_train_wins, args.batch, device)
    # Early stopping: the weights of the step with the lowest validation loss are the ones saved.
    model.load_state_dict(best["state"])
    final_val = mean_loss(model, val_wins, args.batch, device)
    final_train = mean_loss(model, eval_train_wins, args.batch, device)
    val16_gpu = mean_loss(model, val_wins[:16], args.batch, device)
    print(f"last step {step}: train loss {last_step_train:.4f} val loss {last_step_val:.4f}; "
          f"saved best step {best['step']}: train loss {final_train:.4f} val loss {final_val:.4f} "
          f"(bf16 autocast, f32 weights), {train_seconds:.0f}s of training", flush=True)

    # 4. save in f16
    model.eval().to("cpu").to(torch.float16)
    model.generation_config = GenerationConfig(bos_token_id=0, eos_token_id=0, pad_token_id=0)
    try:
        model.save_pretrained(args.out, safe_serialization=True)
    except TypeError:  # transformers versions where safetensors is the only format
        model.save_pretrained(args.out)
    for name in sorted(os.listdir(args.out)):
        if name not in KEEP_FILES:
            print(f"removing extra output {name}", flush=True)
            os.remove(os.path.join(args.out, name))
    del model

    # 5. parity fixture: the saved folder, float32, CPU, eager attention
    ref = GraniteMoeHybridForCausalLM.from_pretrained(args.out, dtype=torch.float32, attn_implementation="eager").eval()
    ref.generation_config.eos_token_id = None  # plain greedy: no token is ever suppressed
    auto_tok = AutoTokenizer.from_pretrained(args.out)
    val_f32_cpu = mean_loss(ref, val_wins[:16], 4, torch.device("cpu"))
    records = []
    with torch.no_grad():
        for prompt in PROMPTS:
            ids = auto_tok(prompt, return_tensors="pt")["input_ids"]
            assert ids[0].tolist() == tok.encode(prompt).ids
            logits = ref(input_ids=ids, use_cache=False).logits[0]
            out = ref.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=32, min_new_tokens=32,
                               do_sample=False, pad_token_id=0)
            new = out[0, ids.shape[1]:].tolist()
            # the same continuation from full forwards (no cache): the argmax of every position
            full_logits = ref(input_ids=out, use_cache=False).logits[0]
            full_argmax = full_logits.argmax(-1).tolist()
            consistent = full_argmax[ids.shape[1] - 1 : -1] == new
            records.append({
                "prompt": prompt,
                "input_ids": ids[0].tolist(),
                "greedy_new_tokens": new,
                "greedy_text": auto_tok.decode(new),
                "full_text": auto_tok.decode(out[0].tolist()),
                "logits_last": logits[-1].tolist(),
                "logits_first": logits[0].tolist(),
                "logits_argmax_full_sequence": full_argmax,
                "greedy_matches_full_forward_argmax": consistent,
            })
            print(f"greedy {prompt!r} -> {auto_tok.decode(new)!r} (consistent with full forward: {consistent})", flush=True)
    reference = {
        "model": "statespace default model (models/default)",
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "weights_dtype": "float16 (model.safetensors)",
        "compute": "float32 on CPU, attn_implementation eager, loaded with from_pretrained(dtype=float32)",
        "generate": "generate(input_ids, max_new_tokens=32, min_new_tokens=32, do_sample=False, pad_token_id=0) "
                    "with generation_config.eos_token_id=None, so no token is suppressed (plain argmax); no BOS is prepended",
        "logits": "logits_last / logits_first: raw lm_head logits (logits_scaling 1.0) of the prompt's last / first "
                  "position from one full forward without cache; logits_argmax_full_sequence: argmax at every position "
                  "of prompt + continuation",
        "prompts": records,
    }
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump(reference, f)

    # samples for the card: greedy (48 tokens) and sampled (seeded)
    samples = []
    with torch.no_grad():
        for prompt in CARD_PROMPTS:
            ids = auto_tok(prompt, return_tensors="pt")["input_ids"]
            out = ref.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=48, do_sample=False, pad_token_id=0)
            samples.append({"prompt": prompt, "mode": "greedy", "text": auto_tok.decode(out[0].tolist())})
        for i, prompt in enumerate(CARD_PROMPTS[:3]):
            torch.manual_seed(args.seed + 100 + i)
            ids = auto_tok(prompt, return_tensors="pt")["input_ids"]
            out = ref.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=48, do_sample=True,
                               temperature=0.8, top_k=50, top_p=1.0, pad_token_id=0)
            samples.append({"prompt": prompt, "mode": "sampled (temperature 0.8, top_k 50)", "text": auto_tok.decode(out[0].tolist())})

    # 6. log and card
    weights_bytes = os.path.getsize(os.path.join(args.out, "model.safetensors"))
    log = {
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
                     "python": platform.python_version(), "cuda": torch.version.cuda,
                     "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"},
        "args": vars(args),
        "corpus": {"bytes": len(text), "sha256": sha256_bytes(text.encode()), "verses": len(verses),
                   "train_verses": len(train_verses), "val_verses": len(val_verses),
                   "train_tokens": len(train_ids), "val_tokens": len(val_ids)},
        "tokenizer_sha256": sha256_bytes(open(os.path.join(args.out, "tokenizer.json"), "rb").read()),
        "parameters": n_params,
        "steps": step,
        "stopped_early": stopped_early,
        "ms_per_step_calibrated": round(step_time * 1000, 2) if step_time else None,
        "train_seconds": round(train_seconds, 1),
        "peak_gpu_memory_gib": round(peak_gib, 2),
        "tokenizer_seconds": round(tokenizer_seconds, 1),
        "tokens_seen": step * args.batch * args.seq,
        "epochs": round(step * args.batch * args.seq / len(train_ids), 2),
        "best_step": best["step"],
        "last_step_train_loss": round(last_step_train, 4),
        "last_step_val_loss": round(last_step_val, 4),
        "final_train_loss": round(final_train, 4),
        "val_loss_first_16_windows_gpu_bf16": round(val16_gpu, 4),
        "final_val_loss": round(final_val, 4),
        "val_loss_saved_f16_weights_f32_cpu_first_16_windows": round(val_f32_cpu, 4),
        "history": history,
        "evals": evals,
        "determinism_warnings": sorted(determinism_warnings),
        "samples": samples,
        "weights_bytes": weights_bytes,
        "total_seconds": round(time.time() - t_start, 1),
    }
    with open(os.path.join(args.out, "train-log.json"), "w") as f:
        json.dump(log, f, indent=1)
    with open(os.path.join(args.out, "README.md"), "w") as f:
        f.write(model_card(config, log, records))
    print("outputs:", sorted(os.listdir(args.out)), flush=True)
    print(f"done in {time.time() - t_start:.0f}s", flush=True)


def model_card(config, log, records) -> str:
    c = log["corpus"]
    v = log["versions"]
    lines = [
        "---",
        "language: en",
        "library_name: transformers",
        "pipeline_tag: text-generation",
        "tags: [granitemoehybrid, mamba2, hybrid, tiny, statespace]",
        "---",
        "",
        "# statespace default model: a tiny Mamba-2 + attention hybrid that speaks King James English",
        "",
        "The model that ships inside statespace so that `pnpm start` can generate text with no model hub in reach. "
        "It is a toy: " f"{log['parameters'] / 1e6:.1f}M parameters trained for a few minutes on one book. It writes fluent-looking "
        "King James pastiche, and it knows nothing else.",
        "",
        "## What it is",
        "",
        f"- Architecture: `GraniteMoeHybridForCausalLM` (IBM Granite 4.0 hybrid), dense (`num_local_experts=0`): "
        f"{config.num_hidden_layers} layers, hidden size {config.hidden_size}; layer types "
        f"`{', '.join('attention' if t == 'full_attention' else 'mamba' for t in config.layer_types)}` "
        f"(one attention layer, 0-based index {config.layer_types.index('full_attention')}).",
        f"- Mamba-2 layers: {config.mamba_n_heads} heads x head dim {config.mamba_d_head} (expand {config.mamba_expand}), "
        f"d_state {config.mamba_d_state}, {config.mamba_n_groups} group, conv kernel {config.mamba_d_conv}, chunk size "
        f"{config.mamba_chunk_size}.",
        f"- Attention layer: {config.num_attention_heads} query heads, {config.num_key_value_heads} key/value heads (GQA), "
        f"head dim {config.hidden_size // config.num_attention_heads}, RoPE (theta 10000), softmax scale "
        f"`attention_multiplier` = {config.attention_multiplier}.",
        f"- Every layer has a SwiGLU MLP (`shared_mlp`) of intermediate size {config.shared_intermediate_size}; RMSNorm eps "
        f"{config.rms_norm_eps}; multipliers: embedding {config.embedding_multiplier}, residual {config.residual_multiplier}, "
        f"logits scaling {config.logits_scaling}.",
        f"- Vocabulary {config.vocab_size}, word embeddings tied to the LM head.",
        f"- Parameters: {log['parameters']:,} (tied embedding counted once). Weights stored in float16: "
        f"`model.safetensors`, {log['weights_bytes']:,} bytes.",
        "",
        "## Corpus and preprocessing",
        "",
        "The King James Version of the Bible (1611; public domain) from Debian's `bible-kjv-text` 4.38 package, "
        "decoded with the `bible` program of `bible-kjv` 4.38 (`bible -f -p /usr/lib Gen1:1-Rev22:21`). Verse "
        "references are stripped, runs of spaces collapsed: plain ASCII, one verse per line, in canonical order, no "
        f"book or chapter markers. {c['bytes']:,} bytes, {c['verses']:,} verses (sha256 `{c['sha256']}`). "
        "See `tools/train-default-model/prepare-corpus.sh` in the statespace repository.",
        "",
        f"Split: verses in blocks of 100; every 20th block is validation ({c['val_verses']:,} verses, "
        f"{c['val_tokens']:,} tokens), the rest training ({c['train_verses']:,} verses, {c['train_tokens']:,} tokens).",
        "",
        "## Tokenizer",
        "",
        f"Byte-level BPE (GPT-2 style pre-tokenizer regex, no prefix space), {config.vocab_size} tokens, trained with "
        f"Hugging Face `tokenizers` {v['tokenizers']} on the training verses (min frequency 2). Token 0 is "
        "`<|endoftext|>`, used as BOS, EOS and padding; it never appears in the training text, and the tokenizer adds "
        "no special tokens when encoding. Verses are separated by `\\n`. `tokenizer.json` is standard; "
        "`tokenizer_config.json` names the special tokens.",
        "",
        "## Training",
        "",
        f"Plain PyTorch loop ({v['torch']}, transformers {v['transformers']}) on one {v['device']}: AdamW (betas 0.9, 0.95, "
        f"weight decay {log['args']['weight_decay']} on matrices), peak learning rate {log['args']['lr']} with "
        f"{log['args']['warmup']} warmup steps and cosine decay to {log['args']['min_lr']}, gradient clipping 1.0, "
        f"batch {log['args']['batch']} x {log['args']['seq']} tokens (random windows of the training stream), "
        f"bf16 autocast with float32 master weights, eager attention, transformers' own PyTorch Mamba-2 path "
        f"(no CUDA kernels). {log['steps']} steps in {log['train_seconds']} s ({log['tokens_seen']:,} tokens, about "
        f"{log['epochs']} epochs). Seed {log['args']['seed']}. Validation loss was measured every "
        f"{log['args']['eval_every']} steps and the weights of the best step were kept (early stopping): the saved "
        f"model is step **{log['best_step']}** of {log['steps']}. At the last step the losses were train "
        f"{log['last_step_train_loss']}, validation {log['last_step_val_loss']}.",
        "",
        f"Loss of the saved model (mean cross-entropy per token, nats, all validation windows "
        f"and as many training windows of {log['args']['seq']} tokens): **train {log['final_train_loss']}, validation "
        f"{log['final_val_loss']}** (bf16 autocast). On the first 16 validation windows: "
        f"{log['val_loss_first_16_windows_gpu_bf16']} (GPU, bf16 autocast, f32 weights) and "
        f"{log['val_loss_saved_f16_weights_f32_cpu_first_16_windows']} (saved float16 weights, float32 on CPU).",
        "",
        "| step | train loss (mean of last 50 steps) |",
        "| --- | --- |",
    ]
    hist = log["history"]
    pick = hist[:: max(1, len(hist) // 8)] + ([hist[-1]] if hist and hist[-1] not in hist[:: max(1, len(hist) // 8)] else [])
    val_at = {e["step"]: e["val_loss"] for e in log["evals"]}
    lines[-2:] = ["| step | train loss (mean of last 50 steps) | validation loss |", "| --- | --- | --- |"]
    lines += [f"| {h['step']} | {h['loss']} | {val_at.get(h['step'], '')} |" for h in pick]
    lines += [
        "",
        "Determinism: seeds fixed (`torch.manual_seed`, a seeded generator for the batches), "
        "`torch.use_deterministic_algorithms(True, warn_only=True)`, `CUBLAS_WORKSPACE_CONFIG=:4096:8`, TF32 off, cuDNN "
        "benchmark off. Ops without a deterministic CUDA implementation only warn; "
        + (f"this run warned about: {'; '.join(log['determinism_warnings'])}. " if log["determinism_warnings"] else
           "this run raised no such warning. ")
        + "Bitwise reproduction is expected only on the same GPU model and the same torch, CUDA and transformers versions.",
        "",
        "## Sample outputs",
        "",
        "Float32 on CPU from the saved weights, 48 new tokens; the prompt is in bold and ` / ` marks a newline "
        "(a verse break):",
        "",
    ]
    for s in log["samples"]:
        body = s["text"][len(s["prompt"]):] if s["text"].startswith(s["prompt"]) else s["text"]
        lines.append(f"- {s['mode']}: **{s['prompt']}**{body.replace(chr(10), ' / ')}")
    lines += [
        "",
        "`reference.json` holds the parity fixture: for the prompts "
        + ", ".join(f"\"{r['prompt']}\"" for r in records)
        + ", the input ids, 32 greedy new tokens from transformers' `generate`, the logits of the first and last "
        "prompt positions, and the argmax at every position, all computed in float32 on CPU with eager attention "
        "from the saved float16 weights.",
        "",
        "## Limits",
        "",
        "- A toy. Trained on one 4 MB book for a few minutes: it imitates KJV style and vocabulary, often repeats "
        "itself under greedy decoding, invents verses, and has no knowledge, no instructions and no chat format.",
        "- Several epochs over one small corpus: the model partly memorises it (early stopping limits this). The "
        "validation split is interleaved blocks of the same book, so validation loss measures style fit, not "
        "generalisation.",
        "- Only English in the KJV's 1611 spelling and punctuation; any modern text is out of distribution.",
        "- Float16 weights: compute in float32 (as the reference does) or bf16/f16 with some drift from the fixture.",
        "",
        "Reproduce: `tools/train-default-model/README.md` in the statespace repository (one command on a GPU machine).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

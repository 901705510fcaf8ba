# transformers (PyTorch, CUDA, eager, f32) on the same shapes as bench/src/models.ts, random weights.
# usage (GPU machine): python3 bench/torch_baseline.py [--models a,b] [--out file.json]
import argparse, json, time, torch, transformers
from transformers import AutoConfig, AutoModelForCausalLM

p = argparse.ArgumentParser()
p.add_argument('--models', default='')
p.add_argument('--out', default='')
p.add_argument('--prefill', default='512,4096')
p.add_argument('--steps', type=int, default=32)
args = p.parse_args()

VOCAB = 50280
CONFIGS = {
    'mamba-130m': dict(model_type='mamba', hidden_size=768, num_hidden_layers=24, state_size=16, expand=2, conv_kernel=4, vocab_size=VOCAB, use_mambapy=False),
    'mamba2-130m': dict(model_type='mamba2', hidden_size=768, num_hidden_layers=24, num_heads=24, head_dim=64, state_size=128, n_groups=1, expand=2, chunk_size=256, vocab_size=VOCAB),
    'granite-hybrid-350m': dict(model_type='granitemoehybrid', hidden_size=768, num_hidden_layers=28,
        layer_types=['attention' if i in (9, 19) else 'mamba' for i in range(28)], num_attention_heads=12, num_key_value_heads=4,
        mamba_n_heads=48, mamba_d_head=32, mamba_d_state=128, mamba_n_groups=1, mamba_chunk_size=256, shared_intermediate_size=2048,
        num_local_experts=0, position_embedding_type='rope', vocab_size=VOCAB),
    'llama-350m': dict(model_type='llama', hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, num_key_value_heads=4, intermediate_size=2816, vocab_size=VOCAB),
}
wanted = [m for m in args.models.split(',') if m] or list(CONFIGS)
dev = 'cuda'
results = []
for name in wanted:
    cfgd = dict(CONFIGS[name]); mt = cfgd.pop('model_type')
    cfg = AutoConfig.for_model(mt, **cfgd)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).to(dev).eval()
    r = {'model': name, 'prefillTokS': {}, 'prefillPeakBytes': {}}
    g = torch.Generator().manual_seed(1)
    def decode(batch):
        ids = torch.randint(0, VOCAB, (batch, 16), generator=g).to(dev)
        with torch.no_grad():
            model.generate(ids, max_new_tokens=4, min_new_tokens=4, do_sample=False, pad_token_id=0)
            torch.cuda.synchronize(); t0 = time.perf_counter()
            model.generate(ids, max_new_tokens=args.steps, min_new_tokens=args.steps, do_sample=False, pad_token_id=0)
            torch.cuda.synchronize()
        return batch * args.steps / (time.perf_counter() - t0)
    r['decodeTokS'] = decode(1)
    r['decodeTokSBatch8'] = decode(8)
    for L in [int(x) for x in args.prefill.split(',')]:
        ids = torch.randint(0, VOCAB, (1, L), generator=g).to(dev)
        try:
            with torch.no_grad():
                # a warm-up run at the measured length, then the median of 3 (as bench/src/run.ts does)
                model(ids, logits_to_keep=1); torch.cuda.synchronize()
                times = []
                for i in range(3):
                    torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
                    t0 = time.perf_counter(); model(ids, logits_to_keep=1); torch.cuda.synchronize()
                    times.append(time.perf_counter() - t0)
                    if i == 0: r['prefillPeakBytes'][L] = torch.cuda.max_memory_allocated() - base
                r['prefillTokS'][L] = L / sorted(times)[1]
        except torch.OutOfMemoryError as e:
            r['prefillTokS'][L] = None; r['prefillPeakBytes'][L] = None
            torch.cuda.empty_cache()
    print(json.dumps(r), flush=True)
    results.append(r)
    del model; torch.cuda.empty_cache()
out = {'transformers': transformers.__version__, 'torch': torch.__version__, 'device': torch.cuda.get_device_name(0), 'results': results}
if args.out: json.dump(out, open(args.out, 'w'), indent=1)

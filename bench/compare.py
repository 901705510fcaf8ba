# Prints statespace / transformers ratios from the two JSON files of one GPU run.
import json, sys
ss = json.load(open(sys.argv[1])); tt = json.load(open(sys.argv[2]))
tm = {r['model']: r for r in tt['results']}
print(f"statespace on {ss['adapter']} (Dawn/Vulkan, weights {ss['dtype']}) vs transformers {tt['transformers']} eager f32 on {tt['device']}")
print(f"streaming-read bandwidth {ss['bandwidthBytesPerS']/1e9:.0f} GB/s (the decode floor: weight bytes / this)")
print(f"| model | decode tok/s (ss / hf / ratio) | batch 8 tok/s (ss / hf / ratio) | prefill 4096 tok/s (ss / hf / ratio) | prefill peak 4096 (ss / hf) | decode vs floor |")
print("|---|---|---|---|---|---|")

def gpu_part(r):
    """', GPU x.xxx' when the run timed its passes on the GPU."""
    return f", GPU {r['gpuMsPerToken']:.3f}" if r.get('gpuMsPerToken') else ''

def f(x): return '-' if x is None else (f"{x:.0f}" if x >= 100 else f"{x:.1f}")
for r in ss['results']:
    h = tm.get(r['model'], {})
    def ratio(a, b): return '-' if not a or not b else f"{a/b:.1f}x"
    L = '4096'
    sp = r['prefillTokS'].get(L); hp = (h.get('prefillTokS') or {}).get(L)
    spk = r['prefillPeakBytes'].get(L); hpk = (h.get('prefillPeakBytes') or {}).get(L)
    print(f"| {r['model']} | {f(r['decodeTokS'])} / {f(h.get('decodeTokS'))} / {ratio(r['decodeTokS'], h.get('decodeTokS'))} "
          f"| {f(r['decodeTokSBatch8'])} / {f(h.get('decodeTokSBatch8'))} / {ratio(r['decodeTokSBatch8'], h.get('decodeTokSBatch8'))} "
          f"| {f(sp)} / {f(hp)} / {ratio(sp, hp)} | {('-' if spk is None else f'{spk/2**20:.0f} MiB')} / {('-' if hpk is None else f'{hpk/2**20:.0f} MiB')} "
          f"| {100*r['decodeTokS']/r['floorTokS']:.0f}% of {f(r['floorTokS'])} |")
    print(f"|  ↳ decode ms/token by context | {', '.join(f'{c}: {v:.2f}' for c, v in r['decodeMsAtContext'].items())} | host {r.get('hostMsPerToken', 0):.3f}{gpu_part(r)} of {r.get('wallMsPerToken', 0):.3f} ms/token | {r.get('dispatchesPerToken', 0)} dispatches/token | | |")

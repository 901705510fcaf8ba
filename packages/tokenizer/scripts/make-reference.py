#!/usr/bin/env python3
"""Record Hugging Face `tokenizers` reference outputs for @statespace/tokenizer's tests.

Reads the bundle in packages/tokenizer/fixtures/inputs/ (manifest.json, the tokenizer.json
files, gzipped where large, and tokenizer_config.json files) and writes one
fixtures/reference-<name>.json per tokenizer with:

  encode: for every test string, `Tokenizer.encode(text, add_special_tokens=False/True).ids`
          and `Tokenizer.decode(ids_with_special, skip_special_tokens=False/True)`;
  decode: decode of pseudo-random id sequences (special ids, byte-fallback ids that form
          broken UTF-8, ...), generated here from a fixed seed and recorded with their ids;
  chat_ids: `encode(rendered_chat, add_special_tokens=False).ids` of every chat render below.

and fixtures/reference-chat.json with `apply_chat_template(..., tokenize=False)` renders of a few
conversations for every tokenizer with a chat template (transformers' own renderer when it is
importable, else a jinja2 environment built exactly as transformers builds it); this part needs
no `tokenizers`.

The test strings are generated deterministically by `make_strings()` and also written to
fixtures/inputs/strings.json.

Usage (from the repository root, on a machine with `pip install tokenizers jinja2`):

    python3 packages/tokenizer/scripts/make-reference.py
    python3 packages/tokenizer/scripts/make-reference.py --no-tokenizers  # strings.json and reference-chat.json only
"""

import argparse
import gzip
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = os.path.dirname(HERE)
DEFAULT_INPUTS = os.path.join(PACKAGE, "fixtures", "inputs")
DEFAULT_OUT = os.path.join(PACKAGE, "fixtures")

# ----------------------------------------------------------------------------------------
# Test strings
# ----------------------------------------------------------------------------------------

HAND_WRITTEN = [
    "",
    " ",
    "  ",
    "Hello world",
    "Hello world!",
    " Hello world",
    "Hello  world",
    "Hello   world   ",
    "hello\nworld",
    "hello\n\nworld\n",
    "hello\r\nworld\r\n",
    "\n",
    "\n\n\n",
    "\t",
    "\tindented\ttabs\t",
    "a\u00a0b",  # no-break space
    "a\u3000b",  # ideographic space
    "a\u2028b",  # line separator
    "a\u0085b",  # NEL: White_Space in Unicode, not in JavaScript's \s
    "a\ufeffb",  # BOM: in JavaScript's \s, not White_Space in Unicode
    "a\u200bb",  # zero width space
    "a\u200db",  # zero width joiner
    "The quick brown fox jumps over the lazy dog.",
    "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG!",
    "I'm sure you're right; they've said it'll work, and we'd agree. Don't.",
    "I'M SURE YOU'RE RIGHT; THEY'VE SAID IT'LL WORK, AND WE'D AGREE. DON'T.",
    "it's 'quoted' and \"double quoted\" and `backticked`",
    "rock 'n' roll, o'clock, ma'am",
    "Hello, world! How are you? I'm fine... (really) [yes] {ok} <tag>",
    "e-mail: someone@example.com, url: https://example.com/a/b?c=d&e=f#g",
    "café naïve résumé façade jalapeño Zürich Ærøskøbing",
    "cafe\u0301 (combining acute, not NFC)",
    "\u1e9b\u0323 compatibility characters",
    "ﬁ ligature, ＡＢＣ fullwidth, ① circled, ™ trademark",
    "Ünïcödé ÀÉÎÕÜ àéîõü ßẞ ÿŸ",
    "Ελληνικά: Καλημέρα κόσμε",
    "Русский: Привет, мир!",
    "العربية: مرحبا بالعالم",
    "עברית: שלום עולם",
    "हिन्दी: नमस्ते दुनिया",
    "ไทย: สวัสดีชาวโลก",
    "中文：你好，世界！",
    "日本語：こんにちは世界。カタカナ、ひらがな、漢字。",
    "한국어: 안녕하세요 세계",
    "混合 mixed 言語 languages 123 テスト",
    "𠀀𠀁𠀂 CJK extension B",
    "😀",
    "👍🏽",
    "👨‍👩‍👧‍👦 family",
    "🇫🇷🇩🇪🇯🇵 flags",
    "emoji😀in😀the😀middle",
    "❤️ 🔥 ✨ 🎉 ✅",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕄𝕒𝕥𝕙 𝟙𝟚𝟛",
    "∀x∈ℝ: x² ≥ 0 → √(x²) = |x|",
    "½ ¼ ¾ ² ³ ¹",
    "0",
    "7",
    "42",
    "123",
    "1234",
    "12345678901234567890",
    "3.14159 2.71828 -1e-10 +6.02e23",
    "1,000,000 and 1.000.000 and 1 000 000",
    "٠١٢٣٤٥٦٧٨٩ Arabic-Indic digits",
    "० १ २ ३ Devanagari digits",
    "Ⅻ roman numeral, ⑳ circled twenty",
    "version 2.0.1-beta+build.5",
    "2024-01-31T12:34:56Z",
    "def foo(x):\n    return x * 2\n",
    "class A:\n\tdef __init__(self):\n\t\tself.x = 1\n",
    "for (let i = 0; i < n; i++) {\n  console.log(i);\n}\n",
    "const f = (a, b) => a ?? b; // comment",
    "if (a && b || !c) { return a != b; }",
    '{"key": "value", "list": [1, 2, 3], "nested": {"a": null}}',
    "<html><body><p class=\"x\">Hi</p></body></html>",
    "SELECT * FROM users WHERE id = 42;",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 1); }",
    "fn main() { let v: Vec<u8> = vec![0xFF; 3]; }",
    "    four leading spaces",
    "        eight leading spaces",
    "trailing spaces    ",
    "a        b",
    "a                                b",
    "x  y   z    w     v",
    "   \n   \n",
    " \t \n \r ",
    "line1\n    line2\n        line3",
    "<s>",
    "</s>",
    "<unk>",
    "<s> Hello</s>",
    "Hello<s>world</s>",
    "<|endoftext|>",
    "text<|endoftext|>more text",
    "<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<think>\nreasoning\n</think>\n\nanswer",
    "<tool_call>{\"name\": \"f\"}</tool_call>",
    "<|padding|>",
    "< s >",
    "<|not_a_token|>",
    "\u0000",
    "null\u0000byte",
    "\u0007bell \u001b[31mred\u001b[0m",
    "\u007f delete",
    "\ufffd replacement char",
    "\U0010ffff last code point",
    "\ue000 private use",
    "a" * 100,
    "ab" * 50,
    "The " * 20,
    "antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "supercalifragilisticexpialidocious",
    "Hello." * 5,
    "!!!???...,,,;;;:::",
    "--- *** ___ ~~~ === +++",
    "....",
    "'s",
    "'S",
    "'",
    "''",
    "don''t",
    "a'b'c'd",
    " 's 't 're 've 'm 'll 'd",
    "x'LL y'Ve z'RE",
    "camelCaseWord PascalCase snake_case kebab-case SCREAMING_CASE",
    "http://a.b/c",
    "user_name123 abc123def 123abc",
    "A1B2C3",
    "π≈3.14",
    "$100.00 €50 £20 ¥1000 ₹500",
    "50% off! #hashtag @mention",
    "C:\\Users\\name\\file.txt",
    "/usr/local/bin/node --version",
    "tab\there",
    "mixed \t\n whitespace \u00a0\u3000 kinds",
    "ending with newline\n",
    "\nstarting with newline",
    "   ",
    "\r",
    "\r\r\n\n",
    "Ａ",
    "ｶﾀｶﾅ halfwidth katakana",
    "Ǆ ǅ ǆ titlecase digraphs",
    "İstanbul ıi",
    "ΣΑΣ σας final sigma",
]


def make_strings():
    """A fixed list: the hand-written cases plus seeded random mixtures of fragments."""
    rng = random.Random(20240611)
    fragments = [
        "the", "The", "and", " of", "to", "in", "is", "it's", "don't", "we'll", "hello", "Hello",
        "world", "token", "tokenizer", "Mamba", "state", "space", "model",
        "café", "naïve", "über", "São Paulo", "Ångström",
        "你好", "世界", "中文", "こんにちは", "東京", "한국", "사랑",
        "😀", "👍🏽", "🇯🇵", "👨‍💻", "✨", "🤖",
        "0", "1", "42", "123", "2024", "3.14", "1,000", "99999", "007",
        "x", "y", "foo", "bar", "baz", "i", "j",
        "()", "[]", "{}", "=>", "==", "!=", "+=", "::", "->", "//", "/*", "*/", "#", "@",
        ".", ",", "!", "?", ";", ":", "'", "\"", "-", "_", "...", "--",
        "Привет", "мир", "Γειά", "שלום", "مرحبا", "नमस्ते",
        "<s>", "</s>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|eot_id|>",
    ]
    separators = ["", "", " ", " ", " ", "  ", "\n", "\t", "   ", "\n\n", " \n", "\r\n"]
    out = list(HAND_WRITTEN)
    while len(out) < 360:
        n = rng.randint(1, 14)
        parts = []
        for _ in range(n):
            parts.append(rng.choice(fragments))
            parts.append(rng.choice(separators))
        text = "".join(parts)
        if rng.random() < 0.2:
            text = " " + text
        if rng.random() < 0.15:
            text = text + rng.choice(["\n", " ", "  ", "."])
        out.append(text)
    # random code points from assorted blocks, excluding surrogates
    blocks = [(0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x4E00, 0x4FFF),
              (0x3040, 0x30FF), (0xAC00, 0xAD00), (0x1F300, 0x1F64F), (0x2000, 0x206F), (0x1D400, 0x1D4FF)]
    for _ in range(40):
        n = rng.randint(1, 12)
        chars = []
        for _ in range(n):
            lo, hi = rng.choice(blocks)
            chars.append(chr(rng.randint(lo, hi)))
        out.append("".join(chars))
    return out


# ----------------------------------------------------------------------------------------
# Chat conversations
# ----------------------------------------------------------------------------------------

CONVERSATIONS = [
    {"messages": [{"role": "user", "content": "Hello!"}], "add_generation_prompt": True},
    {"messages": [{"role": "user", "content": "Hello!"}], "add_generation_prompt": False},
    {
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "  And 3+3?  "},
        ],
        "add_generation_prompt": True,
    },
    {
        "messages": [
            {"role": "user", "content": "Write a haiku about state space models."},
            {"role": "assistant", "content": "Hidden state flows on,\nselective scan remembers —\nlinear in time."},
        ],
        "add_generation_prompt": False,
    },
    {
        "messages": [
            {"role": "user", "content": "Unicode: café 你好 😀\nnew line"},
            {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nSure."},
            {"role": "user", "content": "Thanks"},
        ],
        "add_generation_prompt": True,
        "kwargs": {"enable_thinking": False},
    },
    {
        "messages": [{"role": "assistant", "content": "assistant first"}, {"role": "assistant", "content": "twice"}],
        "add_generation_prompt": False,
    },
]


def chat_renderer():
    """Returns (render(template, messages, add_generation_prompt, context) -> str, description).

    Prefers transformers' own renderer; each candidate must pass a smoke render, so an API
    change in transformers falls back to the next one instead of recording errors.
    """
    candidates = []
    try:
        import transformers  # type: ignore
        from transformers.utils import chat_template_utils as ctu  # type: ignore

        if hasattr(ctu, "render_jinja_template"):

            def render_public(template, messages, add_generation_prompt, context):
                rendered, _ = ctu.render_jinja_template(
                    conversations=[messages],
                    chat_template=template,
                    add_generation_prompt=add_generation_prompt,
                    **context,
                )
                return rendered[0]

            candidates.append((render_public, "transformers " + transformers.__version__ + " render_jinja_template"))
        if hasattr(ctu, "_compile_jinja_template"):

            def render_compiled(template, messages, add_generation_prompt, context):
                return ctu._compile_jinja_template(template).render(
                    messages=messages, tools=None, documents=None, add_generation_prompt=add_generation_prompt, **context
                )

            candidates.append((render_compiled, "transformers " + transformers.__version__ + " _compile_jinja_template"))
    except Exception:  # noqa: BLE001 - transformers absent: use the rebuilt environment
        pass

    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    from datetime import datetime

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)

    def render_rebuilt(template, messages, add_generation_prompt, context):
        return env.from_string(template).render(
            messages=messages, tools=None, documents=None, add_generation_prompt=add_generation_prompt, **context
        )

    candidates.append((render_rebuilt, "jinja2 " + jinja2.__version__ + " (transformers' environment, rebuilt)"))

    smoke = "{% for m in messages %}\n  {{ m['content'] }}{{ bos_token }}\n{% endfor %}{% if add_generation_prompt %}G{% endif %}"
    for render, description in candidates:
        try:
            if render(smoke, [{"role": "user", "content": "x"}], True, {"bos_token": "<s>"}) == "  x<s>\nG":
                return render, description
        except Exception:  # noqa: BLE001 - try the next renderer
            pass
    raise RuntimeError("no chat template renderer passed the smoke test")


def special_token_text(value):
    if isinstance(value, dict):
        return value.get("content")
    return value


def special_tokens_map(config):
    """What transformers puts in the template context: {**self.special_tokens_map, **kwargs}."""
    out = {}
    for key in ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]:
        value = special_token_text(config.get(key))
        if value is not None:
            out[key] = value
    extra = [special_token_text(t) for t in config.get("additional_special_tokens") or []]
    if extra:
        out["additional_special_tokens"] = extra
    return out


# ----------------------------------------------------------------------------------------
# Bundle
# ----------------------------------------------------------------------------------------


def read_json(path):
    if path.endswith(".gz"):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return json.load(f)
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_entry(inputs, entries, entry):
    """Resolves `base` and `overrides` exactly as src/fixtures.test-util.ts does."""
    if "base" in entry:
        base = next(e for e in entries if e["name"] == entry["base"])
        tokenizer, config = load_entry(inputs, entries, base)
    else:
        tokenizer = read_json(os.path.join(inputs, entry["tokenizer"]))
        config = read_json(os.path.join(inputs, entry["config"])) if entry.get("config") else {}
    for key, value in (entry.get("overrides") or {}).items():
        tokenizer[key] = value
    for key, value in (entry.get("config_overrides") or {}).items():
        config[key] = value
    return tokenizer, config


def decode_cases(tok, tokenizer_json, seed):
    """Pseudo-random id sequences that stress the decoder."""
    rng = random.Random(seed)
    vocab_size = tok.get_vocab_size(with_added_tokens=True)
    added = [t["id"] for t in tokenizer_json.get("added_tokens", [])]
    vocab = tokenizer_json["model"]["vocab"]
    byte_ids = [i for t, i in vocab.items() if len(t) == 6 and t.startswith("<0x") and t.endswith(">")]
    space_ids = [i for t, i in vocab.items() if t and set(t) <= {"▁", "Ġ", " ", "Ċ", "ĉ"}]
    cases = []
    for n in range(60):
        length = rng.randint(1, 24)
        ids = []
        for _ in range(length):
            r = rng.random()
            if r < 0.1 and added:
                ids.append(rng.choice(added))
            elif r < 0.3 and byte_ids:
                ids.append(rng.choice(byte_ids))
            elif r < 0.4 and space_ids:
                ids.append(rng.choice(space_ids))
            else:
                ids.append(rng.randrange(vocab_size))
        ids = [i for i in ids if tok.id_to_token(i) is not None]
        if not ids:
            continue
        skip = n % 2 == 1
        cases.append({"ids": ids, "skip_special_tokens": skip, "text": tok.decode(ids, skip_special_tokens=skip)})
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", default=DEFAULT_INPUTS)
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--no-tokenizers", action="store_true", help="only write inputs/strings.json and reference-chat.json")
    parser.add_argument("--only", default=None, help="comma-separated tokenizer names")
    args = parser.parse_args()

    strings = make_strings()
    with open(os.path.join(args.inputs, "strings.json"), "w", encoding="utf-8") as f:
        json.dump(strings, f, ensure_ascii=False, indent=0)
        f.write("\n")
    print(f"wrote {len(strings)} strings to {os.path.join(args.inputs, 'strings.json')}")
    manifest = read_json(os.path.join(args.inputs, "manifest.json"))
    chats = render_chats(args.inputs, manifest)
    with open(os.path.join(args.out, "reference-chat.json"), "w", encoding="utf-8") as f:
        json.dump(chats, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"chat renders ({chats['renderer']}) for {', '.join(chats['tokenizers'])}")
    if args.no_tokenizers:
        return

    import tokenizers  # noqa: E402 - only needed past this point
    from tokenizers import Tokenizer

    wanted = set(args.only.split(",")) if args.only else None
    failures = []
    for index, entry in enumerate(manifest["tokenizers"]):
        name = entry["name"]
        if wanted and name not in wanted:
            continue
        tokenizer_json, _config = load_entry(args.inputs, manifest["tokenizers"], entry)
        try:
            tok = Tokenizer.from_str(json.dumps(tokenizer_json))
        except Exception as error:  # noqa: BLE001 - report every tokenizer that fails, then exit non-zero
            failures.append(f"{name}: tokenizers cannot load it: {error}")
            print(failures[-1], file=sys.stderr)
            continue
        encode = []
        for text in strings:
            plain = tok.encode(text, add_special_tokens=False).ids
            with_special = tok.encode(text, add_special_tokens=True).ids
            encode.append(
                {
                    "text": text,
                    "ids": plain,
                    "ids_with_special": with_special,
                    "decoded": tok.decode(with_special, skip_special_tokens=False),
                    "decoded_skip_special": tok.decode(with_special, skip_special_tokens=True),
                }
            )
        chat_ids = [
            tok.encode(case["text"], add_special_tokens=False).ids if "text" in case else None
            for case in chats["tokenizers"].get(name, [])
        ]
        reference = {
            "name": name,
            "generated_by": "packages/tokenizer/scripts/make-reference.py",
            "tokenizers_version": tokenizers.__version__,
            "encode": encode,
            "decode": decode_cases(tok, tokenizer_json, 1000 + index),
            "chat_ids": chat_ids,
        }
        path = os.path.join(args.out, f"reference-{name}.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(reference, f, ensure_ascii=False, separators=(",", ":"))
            f.write("\n")
        print(f"{name}: {len(encode)} strings, {len(reference['decode'])} decode cases, {len(chat_ids)} chats -> {path}")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


def render_chats(inputs, manifest):
    """apply_chat_template(conversation, tokenize=False) for every tokenizer with a template."""
    render, renderer = chat_renderer()
    out = {"generated_by": "packages/tokenizer/scripts/make-reference.py", "renderer": renderer, "tokenizers": {}}
    for entry in manifest["tokenizers"]:
        _tokenizer_json, config = load_entry(inputs, manifest["tokenizers"], entry)
        template = config.get("chat_template")
        if not isinstance(template, str):
            continue
        context = special_tokens_map(config)
        cases = []
        for conversation in CONVERSATIONS:
            case = {
                "messages": conversation["messages"],
                "add_generation_prompt": conversation["add_generation_prompt"],
                "kwargs": conversation.get("kwargs", {}),
            }
            try:
                case["text"] = render(
                    template, conversation["messages"], conversation["add_generation_prompt"], {**context, **case["kwargs"]}
                )
            except Exception as error:  # noqa: BLE001 - raise_exception() in the template
                case["error"] = str(error)
            cases.append(case)
        out["tokenizers"][entry["name"]] = cases
    return out


if __name__ == "__main__":
    sys.exit(main())

/**
 * Chat templates rendered with @huggingface/jinja the way transformers' `apply_chat_template`
 * renders them with jinja2 (`utils/chat_template_utils.py`): `trim_blocks` and `lstrip_blocks`
 * on, `raise_exception(message)` and `strftime_now(format)` as globals, and in the context the
 * messages, `tools`, `documents`, `add_generation_prompt`, the special tokens of
 * tokenizer_config.json (`{**self.special_tokens_map, **kwargs}`) and any extra variables.
 */
import { Environment, Interpreter, Template } from '@huggingface/jinja';
import { TokenizerError } from './errors.js';
import type { Tokenizer } from './tokenizer.js';

/** One chat message; extra keys (`tool_calls`, `reasoning_content`, ...) reach the template unchanged. */
export interface ChatMessage {
  /** `system`, `user`, `assistant`, `tool`, ... (whatever the template knows). */
  role: string;
  /** The text, or a list of content parts for templates that take them. */
  content: string | ReadonlyArray<Record<string, unknown>>;
  [key: string]: unknown;
}

/** Options of {@link Tokenizer.applyChatTemplate}. */
export interface ChatTemplateOptions {
  /** End with the header that asks the model for an assistant turn. Default false (as transformers). */
  addGenerationPrompt?: boolean;
  /** Leave the final message open so the model continues it (transformers' `continue_final_message`). */
  continueFinalMessage?: boolean;
  /** Tool (function) JSON schemas, passed to the template as `tools`. */
  tools?: ReadonlyArray<Record<string, unknown>> | null;
  /** Documents for retrieval-augmented templates, passed as `documents`. */
  documents?: ReadonlyArray<Record<string, unknown>> | null;
  /** The name of one of several named templates, or a template string to use instead of the tokenizer's. */
  chatTemplate?: string;
  /** Extra template variables (transformers' `**kwargs`, e.g. `{ enable_thinking: false }`); they override the special tokens. */
  templateVariables?: Record<string, unknown>;
}

const compiled = new Map<string, Template>();

function compile(source: string): Template {
  let template = compiled.get(source);
  if (!template) {
    try {
      template = new Template(source);
    } catch (error) {
      throw new TokenizerError('CHAT_TEMPLATE_INVALID', `applyChatTemplate: the chat template does not parse: ${(error as Error).message}`, { cause: error });
    }
    if (compiled.size > 32) compiled.clear();
    compiled.set(source, template);
  }
  return template;
}

/**
 * transformers' `get_chat_template`: picks the template string to render (a named one, `tool_use`
 * when tools are given, `default`, or the single template).
 *
 * @example
 * ```ts
 * selectChatTemplate(tokenizer, { tools: [weatherTool] }); // the "tool_use" template when there is one
 * ```
 */
export function selectChatTemplate(tokenizer: Pick<Tokenizer, 'chatTemplate'>, options: ChatTemplateOptions = {}): string {
  const own = tokenizer.chatTemplate;
  const requested = options.chatTemplate;
  if (own !== null && typeof own === 'object') {
    if (requested !== undefined) return own[requested] ?? requested;
    if (options.tools && own.tool_use !== undefined) return own.tool_use;
    if (own.default !== undefined) return own.default;
    throw new TokenizerError(
      'CHAT_TEMPLATE_MISSING',
      `applyChatTemplate: the tokenizer has several chat templates (${Object.keys(own).join(', ')}) and none is named "default"; pass options.chatTemplate`,
    );
  }
  if (requested !== undefined) return requested;
  if (typeof own === 'string') return own;
  throw new TokenizerError(
    'CHAT_TEMPLATE_MISSING',
    'applyChatTemplate: this tokenizer has no chat template (none in tokenizer_config.json or chat_template.jinja); pass options.chatTemplate',
  );
}

/** The special-token variables transformers puts in the template context. */
export function specialTokenVariables(config: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token']) {
    const value = tokenText(config[key]);
    if (value !== undefined) out[key] = value;
  }
  const extra = Array.isArray(config.additional_special_tokens) ? config.additional_special_tokens.map(tokenText).filter((t) => t !== undefined) : [];
  if (extra.length > 0) out.additional_special_tokens = extra;
  return out;
}

function tokenText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return undefined;
}

/**
 * Renders `messages` with the tokenizer's chat template (see {@link Tokenizer.applyChatTemplate}).
 *
 * @example
 * ```ts
 * applyChatTemplate(tokenizer, [{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true });
 * ```
 */
export function applyChatTemplate(
  tokenizer: Pick<Tokenizer, 'chatTemplate' | 'config'>,
  messages: readonly ChatMessage[],
  options: ChatTemplateOptions = {},
): string {
  if (!Array.isArray(messages) || messages.some((m) => typeof m !== 'object' || m === null)) {
    throw new TokenizerError('INVALID_ARGUMENT', 'applyChatTemplate: messages must be an array of { role, content } objects');
  }
  if (options.continueFinalMessage && options.addGenerationPrompt) {
    throw new TokenizerError('INVALID_ARGUMENT', 'applyChatTemplate: continueFinalMessage and addGenerationPrompt are not compatible');
  }
  const template = compile(selectChatTemplate(tokenizer, options));
  let rendered: string;
  try {
    rendered = render(template, {
      ...specialTokenVariables(tokenizer.config),
      ...options.templateVariables,
      messages,
      tools: options.tools ?? null,
      documents: options.documents ?? null,
      add_generation_prompt: options.addGenerationPrompt ?? false,
    });
  } catch (error) {
    if (TokenizerError.is(error)) throw error;
    throw new TokenizerError('CHAT_TEMPLATE_INVALID', `applyChatTemplate: rendering the chat template failed: ${(error as Error).message}`, { cause: error });
  }
  return options.continueFinalMessage ? cutAfterFinalMessage(rendered, messages) : rendered;
}

/**
 * `Template.render` of @huggingface/jinja with our own globals: its `raise_exception` throws a
 * plain Error that cannot be told apart from a broken template, and globals cannot be
 * re-declared, so they live in a parent scope of the variables.
 */
function render(template: Template, variables: Record<string, unknown>): string {
  const globals = new Environment();
  const builtins: Record<string, unknown> = {
    false: false,
    true: true,
    none: null,
    False: false,
    True: true,
    None: null,
    range: pythonRange,
    strftime_now: strftimeNow,
    raise_exception: (message: unknown) => {
      throw new TokenizerError('CHAT_TEMPLATE_EXCEPTION', `applyChatTemplate: the chat template raised: ${String(message)}`);
    },
  };
  for (const [name, value] of Object.entries(builtins)) globals.set(name, value);
  const scope = new Environment(globals);
  for (const [name, value] of Object.entries(variables)) if (value !== undefined) scope.set(name, value);
  const result = new Interpreter(scope).run(template.parsed) as { value: unknown };
  return String(result.value);
}

function pythonRange(start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) [start, stop] = [0, start];
  if (step === 0) throw new Error('range() arg 3 must not be zero');
  const out: number[] = [];
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
  return out;
}

/** Python's `datetime.now().strftime(format)` for the directives chat templates use. */
function strftimeNow(format: string): string {
  const now = new Date();
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  const month = (style: 'long' | 'short') => new Intl.DateTimeFormat('en-US', { month: style }).format(now);
  const weekday = (style: 'long' | 'short') => new Intl.DateTimeFormat('en-US', { weekday: style }).format(now);
  return String(format).replace(/%[YmdbBaAHMSyje%]/g, (directive) => {
    switch (directive) {
      case '%Y': return String(now.getFullYear());
      case '%y': return pad(now.getFullYear() % 100);
      case '%m': return pad(now.getMonth() + 1);
      case '%d': return pad(now.getDate());
      case '%e': return String(now.getDate()).padStart(2, ' ');
      case '%j': return pad(Math.floor((now.getTime() - new Date(now.getFullYear(), 0, 1).getTime()) / 86_400_000) + 1, 3);
      case '%b': return month('short');
      case '%B': return month('long');
      case '%a': return weekday('short');
      case '%A': return weekday('long');
      case '%H': return pad(now.getHours());
      case '%M': return pad(now.getMinutes());
      case '%S': return pad(now.getSeconds());
      default: return '%';
    }
  });
}

/** transformers' `continue_final_message`: drop what the template wrote after the last message's content. */
function cutAfterFinalMessage(rendered: string, messages: readonly ChatMessage[]): string {
  const last = messages[messages.length - 1];
  let content: unknown = last?.content;
  if (Array.isArray(content)) {
    content = [...content].reverse().find((block) => typeof block?.text === 'string')?.text;
  }
  if (typeof content !== 'string') {
    throw new TokenizerError('INVALID_ARGUMENT', 'applyChatTemplate: continueFinalMessage needs a final message with text content');
  }
  const at = rendered.lastIndexOf(content.trim());
  if (at < 0) {
    throw new TokenizerError('CHAT_TEMPLATE_INVALID', 'applyChatTemplate: continueFinalMessage is set but the final message does not appear in the rendered chat');
  }
  const lstripped = content.trimStart();
  if (rendered.slice(at, at + lstripped.length) === content) return rendered.slice(0, at + lstripped.length);
  return rendered.slice(0, at + content.trim().length);
}

import { describe, expect, it } from 'vitest';
import { Tokenizer } from './tokenizer.js';
import { TokenizerError } from './errors.js';
import { entryFiles, fixtureTokenizer } from './test-fixtures.js';

const neoxJson = () => entryFiles('neox').tokenizer;
const make = (config: Record<string, unknown>, chatTemplate?: string) => new Tokenizer(neoxJson(), config, { chatTemplate });
const user = (content: string) => ({ role: 'user', content });
const assistant = (content: string) => ({ role: 'assistant', content });

function errorCode(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return TokenizerError.is(e) ? e.code : `plain error: ${String(e)}`;
  }
  return 'no error';
}

describe('applyChatTemplate', () => {
  const llama2 = () => fixtureTokenizer('llama2');

  it('puts bos_token / eos_token of tokenizer_config.json in the context', () => {
    const tokenizer = llama2();
    expect(tokenizer.applyChatTemplate([user('Hi'), assistant('Hello!'), user('Bye')])).toBe('<s>[INST] Hi [/INST] Hello! </s><s>[INST] Bye [/INST]');
  });

  it('turns raise_exception(message) into a CHAT_TEMPLATE_EXCEPTION with the message', () => {
    const tokenizer = llama2();
    const render = () => tokenizer.applyChatTemplate([user('a'), user('b')]);
    expect(errorCode(render)).toBe('CHAT_TEMPLATE_EXCEPTION');
    expect(render).toThrow('Conversation roles must alternate user/assistant/user/assistant/...');
  });

  it('passes add_generation_prompt, tools, documents and extra variables', () => {
    const template =
      "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}" +
      "{% if tools is not none %}T{{ tools | length }}:{{ tools[0] | tojson }}{% endif %}" +
      "{% if documents is none %}D-{% endif %}{% if add_generation_prompt %}[assistant]{% endif %}{{ greeting | default('') }}";
    const tokenizer = make({ bos_token: { content: '<|endoftext|>', __type: 'AddedToken' } }, template);
    expect(tokenizer.applyChatTemplate([user('x')])).toBe('<|endoftext|>[user]xD-');
    expect(tokenizer.applyChatTemplate([user('x')], { addGenerationPrompt: true, tools: [{ name: 'f', é: 1 }], templateVariables: { greeting: '!' } })).toBe(
      '<|endoftext|>[user]xT1:{"name": "f", "é": 1}D-[assistant]!',
    );
  });

  it('trims blocks and their leading whitespace (trim_blocks, lstrip_blocks)', () => {
    const template = '{% for m in messages %}\n    {% if m.role == "user" %}\nU:{{ m.content }}\n    {% endif %}\n{% endfor %}';
    expect(make({}, template).applyChatTemplate([user('a'), user('b')])).toBe('U:a\nU:b\n');
  });

  it('continueFinalMessage cuts what the template adds after the last message', () => {
    const tokenizer = make({ eos_token: '<|endoftext|>' }, '{% for m in messages %}<{{ m.role }}>{{ m.content }}{{ eos_token }}\n{% endfor %}');
    expect(tokenizer.applyChatTemplate([user('Hi'), assistant('The answer is')], { continueFinalMessage: true })).toBe('<user>Hi<|endoftext|>\n<assistant>The answer is');
    expect(errorCode(() => tokenizer.applyChatTemplate([user('x')], { continueFinalMessage: true, addGenerationPrompt: true }))).toBe('INVALID_ARGUMENT');
  });

  it('picks a named template: the requested one, tool_use when tools are given, else default', () => {
    const tokenizer = make({
      chat_template: [
        { name: 'default', template: 'D' },
        { name: 'tool_use', template: 'T' },
        { name: 'rag', template: 'R' },
      ],
    });
    expect(tokenizer.applyChatTemplate([user('x')])).toBe('D');
    expect(tokenizer.applyChatTemplate([user('x')], { tools: [{}] })).toBe('T');
    expect(tokenizer.applyChatTemplate([user('x')], { chatTemplate: 'rag' })).toBe('R');
    expect(tokenizer.applyChatTemplate([user('x')], { chatTemplate: 'inline {{ messages | length }}' })).toBe('inline 1');
  });

  it('fails with typed errors: no template, a template that does not parse, one that fails at render', () => {
    expect(errorCode(() => make({}).applyChatTemplate([user('x')]))).toBe('CHAT_TEMPLATE_MISSING');
    expect(errorCode(() => make({}, '{% for m in messages %}').applyChatTemplate([user('x')]))).toBe('CHAT_TEMPLATE_INVALID');
    expect(errorCode(() => make({}, '{{ messages[0].content.nope() }}').applyChatTemplate([user('x')]))).toBe('CHAT_TEMPLATE_INVALID');
    expect(errorCode(() => make({}, 'x').applyChatTemplate('hi' as never))).toBe('INVALID_ARGUMENT');
  });

  it('encodeChat encodes the render without adding special tokens again', () => {
    const tokenizer = llama2();
    const messages = [user('Hi')];
    const ids = tokenizer.encodeChat(messages);
    expect(ids).toEqual(tokenizer.encode(tokenizer.applyChatTemplate(messages), { addSpecialTokens: false }));
    expect(ids.filter((id) => id === tokenizer.bosToken!.id).length).toBe(1);
  });
});

import { describeTextProblem, findTextProblem, hasControlCharacter, problemOfMember, textProblem } from './text';

describe('textProblem', () => {
  it('refuses every C0 control and DEL under the identifier rule', () => {
    for (let c = 0; c < 0x20; c++) expect(textProblem(`a${String.fromCharCode(c)}b`)).toBe('contains a control character');
    expect(textProblem('a\u007fb')).toBe('contains a control character');
    expect(textProblem('spiffe://writ.local/a-b_c.d')).toBeUndefined();
  });

  it('allows tab, LF and CR under the text rule, nothing else below U+0020', () => {
    expect(textProblem('-----BEGIN X-----\r\n\tAA==\n', 'text')).toBeUndefined();
    expect(textProblem('a\u0000', 'text')).toBe('contains a control character');
    expect(textProblem('a\u000b', 'text')).toBe('contains a control character');
    expect(textProblem('a\u007f', 'text')).toBe('contains a control character');
  });

  it('refuses unpaired surrogates, allows paired ones and other non-ASCII text', () => {
    expect(textProblem('a\ud800')).toMatch(/unpaired UTF-16 surrogate/);
    expect(textProblem('\udc00a')).toMatch(/unpaired UTF-16 surrogate/);
    expect(textProblem('💥 é ü \u0085')).toBeUndefined();
  });

  it('refuses invisible formatting characters in identifiers, not in text', () => {
    for (const c of ['\ufeff', '\u200b', '\u200e', '\u202e', '\u2066', '\u2060', '\u00ad']) {
      expect([c, textProblem(`${c}alice`, 'identifier')]).toEqual([c, 'contains an invisible formatting character (such as U+FEFF or U+202E)']);
      expect([c, textProblem(`al${c}ice`, 'text')]).toEqual([c, undefined]);
    }
    expect(textProblem('émile ✓ 😀 渡辺', 'identifier')).toBeUndefined();
  });

  it('hasControlCharacter follows the same rules', () => {
    expect(hasControlCharacter('a\tb')).toBe(true);
    expect(hasControlCharacter('a\tb', 'text')).toBe(false);
  });
});

describe('findTextProblem', () => {
  it('names the path of the first refused string', () => {
    expect(findTextProblem({ a: 'ok', b: [{ c: 'x' }, { c: 'y\u0000' }] })).toEqual({ path: 'b.1.c', problem: 'contains a control character' });
    expect(findTextProblem(['ok', 'n\u0000'])).toEqual({ path: '1', problem: 'contains a control character' });
    expect(findTextProblem('\u0000')).toEqual({ path: '', problem: 'contains a control character' });
  });

  it('checks member names under keyRule, and shows them printable', () => {
    expect(findTextProblem({ ok: { 'bad\u0000key': 1 } }, 'text')).toEqual({ path: 'ok.bad?key', problem: 'contains a control character', inName: true });
    expect(describeTextProblem({ path: 'ok.bad?key', problem: 'contains a control character', inName: true })).toBe('ok.bad?key: its name contains a control character');
    expect(problemOfMember({ path: 'a', problem: 'contains a control character', inName: true })).toBe('has a name that contains a control character');
    expect(findTextProblem({ 'line\nbreak': 1 }, 'text', 'text')).toBeUndefined();
  });

  it('ignores numbers, booleans, null, and non-plain objects', () => {
    expect(findTextProblem({ n: 1, b: true, z: null, buf: Buffer.from([0]), d: new Date(0) })).toBeUndefined();
  });

  it('walks any depth without recursion', () => {
    let deep: unknown = 'bottom\u0000';
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(findTextProblem(deep)?.problem).toBe('contains a control character');
  });

  it('describes a problem as one line naming the field', () => {
    expect(describeTextProblem({ path: 'resource', problem: 'contains a control character' })).toBe('resource: contains a control character');
    expect(describeTextProblem({ path: '', problem: 'contains a control character' }, 'the body')).toBe('the body contains a control character');
  });
});

import { describe, expect, it } from 'vitest';
import { fieldLabel, multiline, secret, typeLabel } from './catalog';

describe('typeLabel', () => {
  it.each([
    ['openai', 'OpenAI'],
    ['aws', 'AWS'],
    ['custom-revenue', 'Custom billing API'],
    // A type the API lists but the dashboard has no label for yet shows its name.
    ['zuora', 'zuora'],
    // Not an inherited property of the label table.
    ['constructor', 'constructor'],
    ['toString', 'toString'],
  ])('%s is shown as %s', (name, want) => {
    expect(typeLabel(name)).toBe(want);
  });
});

describe('secret', () => {
  it.each([
    ['api_key', true],
    ['app_key', true],
    ['secret_access_key', true],
    ['private_key', true],
    ['auth_token', true],
    ['password', true],
    // An AWS access key id is an identifier, shown as typed.
    ['access_key_id', false],
    ['base_url', false],
    ['region', false],
    ['vendor_id', false],
    ['mapping', false],
  ])('%s masked: %s', (field, want) => {
    expect(secret(field)).toBe(want);
  });
});

describe('fields', () => {
  it('labels a field name in words', () => {
    expect(fieldLabel('api_key')).toBe('API key');
    expect(fieldLabel('base_url')).toBe('Base URL');
    expect(fieldLabel('records_path')).toBe('Records path');
  });
  it('takes the mapping as a multi-line document', () => {
    expect(multiline('mapping')).toBe(true);
    expect(multiline('api_key')).toBe(false);
  });
});

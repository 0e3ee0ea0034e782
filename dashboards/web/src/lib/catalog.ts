// The service types and their credential fields, as connectors/catalog
// Builtin() lists them (the API validates against that list and names any
// field that is missing or unknown). Secret fields are masked inputs.

export type Category = 'usage' | 'revenue';

export interface ServiceType {
  name: string;
  label: string;
  category: Category;
  required: string[];
  optional: string[];
}

const baseURL = ['base_url'];
const customOptions = [
  'mapping',
  'path',
  'records_path',
  'auth_header',
  'account_id',
  'stream',
  'pagination',
  'cursor_param',
  'next_cursor_path',
  'has_more_path',
  'page_param',
  'offset_param',
  'limit_param',
  'page_size',
  'next_url_path',
  'since_param',
  'mapping_file',
];

export const SERVICE_TYPES: ServiceType[] = [
  { name: 'openai', label: 'OpenAI', category: 'usage', required: ['api_key'], optional: baseURL },
  { name: 'anthropic', label: 'Anthropic', category: 'usage', required: ['api_key'], optional: baseURL },
  { name: 'aws', label: 'AWS', category: 'usage', required: ['access_key_id', 'secret_access_key', 'region'], optional: baseURL },
  { name: 'datadog', label: 'Datadog', category: 'usage', required: ['api_key', 'app_key'], optional: ['site', 'base_url'] },
  { name: 'custom-usage', label: 'Custom usage API', category: 'usage', required: ['api_key', 'base_url'], optional: customOptions },
  { name: 'stripe', label: 'Stripe', category: 'revenue', required: ['api_key'], optional: baseURL },
  { name: 'chargebee', label: 'Chargebee', category: 'revenue', required: ['api_key', 'site'], optional: baseURL },
  { name: 'paddle', label: 'Paddle', category: 'revenue', required: ['api_key', 'vendor_id'], optional: baseURL },
  { name: 'recurly', label: 'Recurly', category: 'revenue', required: ['api_key', 'subdomain'], optional: baseURL },
  { name: 'braintree', label: 'Braintree', category: 'revenue', required: ['merchant_id', 'public_key', 'private_key'], optional: baseURL },
  { name: 'custom-revenue', label: 'Custom billing API', category: 'revenue', required: ['api_key', 'base_url'], optional: customOptions },
];

const SECRET = /key|secret|token|password/;

/** secret reports whether a field holds a credential: a masked input that is never shown back. */
export function secret(field: string): boolean {
  return SECRET.test(field) && field !== 'access_key_id';
}

/** multiline fields are YAML documents. */
export function multiline(field: string): boolean {
  return field === 'mapping';
}

export function fieldLabel(field: string): string {
  return field.replace(/_/g, ' ').replace(/\b(api|id|url|aws)\b/g, (w) => w.toUpperCase()).replace(/^./, (c) => c.toUpperCase());
}

// What the dashboard adds to the service types of GET /api/service-types
// (connectors/catalog, the list the API validates against): display labels
// and how each credential field is entered. The types and their fields come
// from the API only.

export type Category = 'usage' | 'revenue';

/** One entry of GET /api/service-types. */
export interface ServiceType {
  name: string;
  category: Category;
  required: string[];
  optional: string[];
  /** What uvr does with each field (e.g. org_id → the OpenAI-Organization header). */
  help?: Record<string, string>;
  native: boolean;
}

const LABELS: Record<string, string> = {
  openai: 'OpenAI',
  anthropic: 'Anthropic',
  aws: 'AWS',
  datadog: 'Datadog',
  'custom-usage': 'Custom usage API',
  stripe: 'Stripe',
  chargebee: 'Chargebee',
  paddle: 'Paddle',
  recurly: 'Recurly',
  braintree: 'Braintree',
  'custom-revenue': 'Custom billing API',
};

/** typeLabel is a service type's display name; a type the dashboard does not know yet shows its API name. */
export function typeLabel(name: string): string {
  return Object.hasOwn(LABELS, name) ? LABELS[name] : name;
}

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

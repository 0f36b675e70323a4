// Checking frames against the protocol's JSON Schemas (docs/asyncapi.yaml), in the browser
// too: a small interpreter of the keywords those schemas use, without `eval` (the page's
// Content-Security-Policy forbids it, and a compiling validator needs it). A keyword it
// does not know is an error at load time, never silently ignored; the Node tests check it
// agrees with ajv on every frame they see.

import generated from './schemas.generated.js';

// Keywords that describe and never constrain.
const ANNOTATIONS = new Set([
  'description', 'title', 'contentEncoding', 'contentMediaType', 'examples', 'default',
  '$comment', 'format', 'deprecated', 'readOnly', 'writeOnly',
]);
const CHECKS = {
  type: (schema, value) => (typeMatches(schema.type, value) ? [] : [`must be ${schema.type}`]),
  const: (schema, value) => (same(schema.const, value) ? [] : [`must be ${JSON.stringify(schema.const)}`]),
  enum: (schema, value) =>
    schema.enum.some((option) => same(option, value)) ? [] : [`must be one of ${schema.enum.join(', ')}`],
  pattern: (schema, value) =>
    typeof value !== 'string' || new RegExp(schema.pattern, 'u').test(value) ? [] : [`must match ${schema.pattern}`],
  minLength: (schema, value) =>
    typeof value !== 'string' || [...value].length >= schema.minLength ? [] : [`shorter than ${schema.minLength}`],
  maxLength: (schema, value) =>
    typeof value !== 'string' || [...value].length <= schema.maxLength ? [] : [`longer than ${schema.maxLength}`],
  minimum: (schema, value) => (typeof value !== 'number' || value >= schema.minimum ? [] : [`below ${schema.minimum}`]),
  maximum: (schema, value) => (typeof value !== 'number' || value <= schema.maximum ? [] : [`above ${schema.maximum}`]),
  minItems: (schema, value) =>
    !Array.isArray(value) || value.length >= schema.minItems ? [] : [`fewer than ${schema.minItems} items`],
  maxItems: (schema, value) =>
    !Array.isArray(value) || value.length <= schema.maxItems ? [] : [`more than ${schema.maxItems} items`],
  required: (schema, value) =>
    !isObject(value) ? [] : schema.required.filter((name) => !(name in value)).map((name) => `${name} is required`),
  properties: (schema, value, check) =>
    !isObject(value)
      ? []
      : Object.entries(schema.properties)
          .filter(([name]) => name in value)
          .flatMap(([name, sub]) => check(sub, value[name]).map((problem) => `${name}: ${problem}`)),
  additionalProperties: (schema, value, check) => {
    if (!isObject(value)) return [];
    const known = new Set(Object.keys(schema.properties ?? {}));
    return Object.keys(value)
      .filter((name) => !known.has(name))
      .flatMap((name) =>
        schema.additionalProperties === false
          ? [`${name} is not allowed`]
          : check(schema.additionalProperties, value[name]).map((problem) => `${name}: ${problem}`),
      );
  },
  items: (schema, value, check) =>
    !Array.isArray(value)
      ? []
      : value.flatMap((item, index) => check(schema.items, item).map((problem) => `${index}: ${problem}`)),
  allOf: (schema, value, check) => schema.allOf.flatMap((sub) => check(sub, value)),
  anyOf: (schema, value, check) =>
    schema.anyOf.some((sub) => check(sub, value).length === 0) ? [] : ['matches none of anyOf'],
  oneOf: (schema, value, check) =>
    schema.oneOf.filter((sub) => check(sub, value).length === 0).length === 1 ? [] : ['must match exactly one of oneOf'],
  if: (schema, value, check) => {
    const branch = check(schema.if, value).length === 0 ? schema.then : schema.else;
    return branch === undefined ? [] : check(branch, value);
  },
  then: () => [],
  else: () => [],
  not: (schema, value, check) => (check(schema.not, value).length === 0 ? ['must not match not'] : []),
};

function isObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function typeMatches(type, value) {
  if (Array.isArray(type)) return type.some((one) => typeMatches(one, value));
  switch (type) {
    case 'object': return isObject(value);
    case 'array': return Array.isArray(value);
    case 'integer': return Number.isInteger(value);
    case 'number': return typeof value === 'number' && Number.isFinite(value);
    case 'null': return value === null;
    default: return typeof value === type;
  }
}

function same(left, right) {
  return JSON.stringify(left) === JSON.stringify(right);
}

function assertKnownKeywords(schema, where) {
  if (typeof schema === 'boolean') return;
  for (const [keyword, value] of Object.entries(schema)) {
    if (ANNOTATIONS.has(keyword)) continue;
    if (!(keyword in CHECKS)) throw new Error(`${where}: the schema keyword ${keyword} is not supported`);
    const subs = {
      properties: () => Object.values(value),
      items: () => [value],
      additionalProperties: () => (typeof value === 'object' ? [value] : []),
      allOf: () => value, anyOf: () => value, oneOf: () => value,
      if: () => [value], then: () => [value], else: () => [value],
    }[keyword]?.() ?? [];
    subs.forEach((sub) => assertKnownKeywords(sub, `${where}/${keyword}`));
  }
}

/**
 * The frames of one version of the protocol: `{schemas, messages}` as in
 * schemas.generated.js (messages maps "client.sendMessage" to a schema name).
 */
export class FrameSchemas {
  constructor({ schemas, messages }) {
    for (const [name, schema] of Object.entries(schemas)) assertKnownKeywords(schema, name);
    this.schemas = schemas;
    this.messages = messages;
  }

  /** Whether the protocol has this message ("client.setPresenceVisibility", "server.items"). */
  has(message) {
    return message in this.messages;
  }

  /** What is wrong with a frame of this message, as readable lines ([] when it is valid). */
  problems(message, frame) {
    if (!this.has(message)) return [`${message} is not a message of the protocol`];
    const check = (schema, value) =>
      typeof schema === 'boolean'
        ? (schema ? [] : ['is not allowed'])
        : Object.keys(schema).flatMap((keyword) =>
            ANNOTATIONS.has(keyword) ? [] : CHECKS[keyword](schema, value, check),
          );
    return check(this.schemas[this.messages[message]], frame);
  }

  /** Problems of a client frame (by its action) or a server frame (by its type). */
  problemsOfFrame(frame) {
    if (isObject(frame) && typeof frame.action === 'string') {
      return this.problems(`client.${frame.action}`, frame);
    }
    if (isObject(frame) && typeof frame.type === 'string') {
      return this.problems(`server.${frame.type}`, frame);
    }
    return ['a frame is an object with an action or a type'];
  }
}

/** The schemas of docs/asyncapi.yaml as this SDK was built with them. */
export const PROTOCOL_SCHEMAS = new FrameSchemas(generated);

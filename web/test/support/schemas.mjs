// The protocol's JSON Schemas as docs/asyncapi.yaml publishes them, read by ajv: every
// frame the tests see (sent by the SDK, or sent to it) is checked against them.
//
// docs/protocol.md v1.1 adds frames that other branches are adding to docs/asyncapi.yaml right
// now (paged and batched sync, setPresenceVisibility). Until the document has them, the
// fake server's tests use V11_ADDITIONS, written from docs/protocol.md §2-§3; a message the
// document has always wins over this list.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import Ajv from 'ajv';
import { parse } from 'yaml';

import { FrameSchemas } from '../../sdk/schema.js';

const ASYNCAPI = fileURLToPath(new URL('../../../docs/asyncapi.yaml', import.meta.url));
const USER_ID = { type: 'string', pattern: '^[a-z0-9][a-z0-9_.-]{0,63}$' };

export const V11_ADDITIONS = {
  'client.setPresenceVisibility': ['SetPresenceVisibility', {
    type: 'object',
    properties: {
      action: { type: 'string', const: 'setPresenceVisibility' },
      visibility: { type: 'string', enum: ['everyone', 'contacts', 'nobody'] },
      contacts: { type: 'array', maxItems: 1000, items: USER_ID },
    },
    required: ['action', 'visibility'],
  }],
  'server.presenceVisibility': ['PresenceVisibilityFrame', {
    type: 'object',
    properties: {
      type: { type: 'string', const: 'presenceVisibility' },
      visibility: { type: 'string', enum: ['everyone', 'contacts', 'nobody'] },
      count: { type: 'integer', minimum: 0, maximum: 1000 },
    },
    required: ['type', 'visibility', 'count'],
  }],
  'server.items': ['ItemsFrame', {
    type: 'object',
    properties: {
      type: { type: 'string', const: 'items' },
      items: { type: 'array', minItems: 1, items: { type: 'object', properties: { type: { type: 'string', enum: ['message', 'receipt'] } }, required: ['type'] } },
    },
    required: ['type', 'items'],
  }],
};

export function asyncapiSchemas() {
  const document = parse(readFileSync(ASYNCAPI, 'utf8'));
  const { schemas, messages } = document.components;
  return {
    schemas,
    messages: Object.fromEntries(Object.entries(messages).map(([name, m]) => [name, m.payload.$ref.split('/').pop()])),
  };
}

/** The document's schemas plus V11_ADDITIONS for what it does not have yet. */
export function v11Schemas() {
  const published = asyncapiSchemas();
  const schemas = { ...published.schemas };
  const messages = { ...published.messages };
  for (const [message, [name, schema]] of Object.entries(V11_ADDITIONS)) {
    if (message in messages) continue;
    schemas[name] = schema;
    messages[message] = name;
  }
  return { schemas, messages };
}

/** An ajv checker: `check(frame)` throws when the frame breaks its schema. */
export function ajvChecker({ schemas, messages } = v11Schemas()) {
  const ajv = new Ajv({ strict: false, allErrors: true });
  const validators = Object.fromEntries(Object.entries(messages).map(([message, name]) => [message, ajv.compile(schemas[name])]));
  const problems = (frame) => {
    const message = typeof frame?.action === 'string' ? `client.${frame.action}` : `server.${frame?.type}`;
    const validate = validators[message];
    if (!validate) return [`${message} is not a message of the protocol`];
    return validate(frame) ? [] : validate.errors.map((error) => `${error.instancePath} ${error.message}`);
  };
  const check = (frame) => {
    const found = problems(frame);
    if (found.length) throw new Error(`frame breaks the schema: ${found.join('; ')}\n${JSON.stringify(frame)}`);
  };
  return { check, problems, messages: Object.keys(messages) };
}

export const frameSchemasV11 = () => new FrameSchemas(v11Schemas());

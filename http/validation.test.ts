import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiError } from './errors.ts';
import { createUserBody, typedListQuery, userIdParams } from './schemas.ts';
import { parseInput, type InputPart } from './validation.ts';

function details(schema: Parameters<typeof parseInput>[0], input: unknown, part?: InputPart): unknown {
  try {
    parseInput(schema, input, part);
  } catch (error) {
    assert.ok(error instanceof ApiError);
    assert.equal(error.status, 400);
    return error.fields.details;
  }
  return assert.fail('parsed');
}

test('an unknown query parameter is named as the field, not the body', () => {
  assert.deepEqual(details(typedListQuery, { limit: '5', colour: 'red' }, 'query'), [
    { field: 'colour', message: 'is not a known field' },
  ]);
});

test('an issue about the whole input names the part it came from; a field issue names the field', () => {
  assert.deepEqual(details(typedListQuery, 'not an object', 'query'), [
    { field: '(query)', message: 'Invalid input: expected object, received string' },
  ]);
  assert.deepEqual(details(createUserBody, []), [
    { field: '(body)', message: 'Invalid input: expected object, received array' },
  ]);
  const [issue] = details(userIdParams, { user_id: 'nope' }, 'path') as { field: string }[];
  assert.equal(issue?.field, 'user_id');
});

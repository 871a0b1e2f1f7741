import {
  getOperationAST,
  Kind,
  parse,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type SelectionSetNode,
} from 'graphql';
import type { Charge, PerUserPolicy } from '../rate-limit.ts';

/** A field of the operation's root, as written: its name and its arguments. */
export interface RootField {
  name: string;
  node: FieldNode;
}

/** What the edge needs to know of a request before it runs: its kind and its root fields. */
export interface Operation {
  kind: 'query' | 'mutation' | 'subscription';
  fields: RootField[];
}

/**
 * The operation a request names, read before anything runs so that it can be counted against the
 * rate limits and refused without its key as the REST routes are. Undefined when the document does
 * not parse within `max_tokens` or names no single operation: GraphQL's own validation answers those.
 */
export function readOperation(
  query: string,
  operationName: string | undefined,
  max_tokens: number,
): Operation | undefined {
  let document: DocumentNode;
  try {
    document = parse(query, { maxTokens: max_tokens, noLocation: true });
  } catch {
    return undefined;
  }
  const operation = getOperationAST(document, operationName);
  if (!operation) return undefined;
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  }
  return { kind: operation.operation, fields: rootFields(operation.selectionSet, fragments, new Set()) };
}

/**
 * The fields of a root selection set, through its fragments (each spread once: a cycle is invalid and
 * refused by validation, and must not loop here). Directives are ignored: a field is counted as written.
 */
function rootFields(
  selections: SelectionSetNode,
  fragments: ReadonlyMap<string, FragmentDefinitionNode>,
  spread: Set<string>,
): RootField[] {
  return selections.selections.flatMap((selection): RootField[] => {
    if (selection.kind === Kind.FIELD) return [{ name: selection.name.value, node: selection }];
    if (selection.kind === Kind.INLINE_FRAGMENT) return rootFields(selection.selectionSet, fragments, spread);
    const name = selection.name.value;
    const fragment = fragments.get(name);
    if (!fragment || spread.has(name)) return [];
    spread.add(name);
    return rootFields(fragment.selectionSet, fragments, spread);
  });
}

/** Introspection (`__schema`, `__type`, `__typename`) reads the schema, not an account. */
export const isIntrospection = (field: RootField) => field.name.startsWith('__');

/** The root fields under a per-caller rate limit, as REST counts their routes. */
const POLICIES: Readonly<Record<string, PerUserPolicy>> = { balance: 'balance', transactions: 'transactions' };

/**
 * The per-caller limits an operation is counted against: one charge per balance field and one per
 * list field (aliases included, so ten balances in one request cost ten), each in the bucket of the
 * account its `userId` names, as REST counts the account in the path or query.
 */
export function chargesOf(operation: Operation | undefined, variables: Readonly<Record<string, unknown>>): Charge[] {
  if (operation?.kind !== 'query') return [];
  return operation.fields.flatMap((field): Charge[] => {
    const policy = POLICIES[field.name];
    return policy ? [{ policy, target: stringArgument(field.node, 'userId', variables) }] : [];
  });
}

/** A string argument written in the document or passed as a variable; undefined otherwise. */
function stringArgument(
  field: FieldNode,
  name: string,
  variables: Readonly<Record<string, unknown>>,
): string | undefined {
  const value = field.arguments?.find((argument) => argument.name.value === name)?.value;
  if (value?.kind === Kind.STRING) return value.value;
  if (value?.kind === Kind.VARIABLE) {
    const given = variables[value.name.value];
    return typeof given === 'string' ? given : undefined;
  }
  return undefined;
}

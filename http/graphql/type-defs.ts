/**
 * The GraphQL API's schema in SDL: the types, and what each field means. Resolvers are in
 * `schema.ts`; `GET /graphql/schema.graphql` publishes this schema as built (`printSchema`).
 */
export const typeDefs = /* GraphQL */ `
  """
  A whole number of a currency's minor units (1050 is 10.50 USD), written as a JSON number. GraphQL's
  Int stops at 2^31 - 1, while an amount goes up to 10^12 and a balance up to 2^53 - 1: both exact as
  JSON numbers, as in the REST API.
  """
  scalar MinorUnits

  """
  Your own string pairs kept with a transaction, as a JSON object: at most 20 keys of 1 to 40
  characters (not __proto__, constructor or prototype), values of at most 500 characters.
  """
  scalar Metadata

  enum TransactionType {
    deposit
    withdrawal
  }

  """
  pending -> processing -> succeeded | failed, never backwards.
  """
  enum TransactionStatus {
    pending
    processing
    succeeded
    failed
  }

  enum CallerKind {
    admin
    user
  }

  type Query {
    """
    Who the API key belongs to. The admin's id is "admin" and its other fields are null.
    """
    me: Caller
    """
    An account's balance in every currency, from its live actor. Counts against the balance rate limit.
    """
    balance(userId: ID!): Balance
    """
    A page of transactions, newest first: the caller's own for a user (another user's id is not
    found), every user's for the admin unless userId names one. first: 1 to 100, 20 when absent;
    after: the endCursor of the previous page (the REST API's cursors). Counts against the
    transaction lists' rate limit.
    """
    transactions(userId: ID, filter: TransactionFilter, first: Int, after: String): TransactionConnection
    """
    One transaction with its audit trail. Another user's transaction is not found.
    """
    transaction(id: ID!): AuditedTransaction
  }

  """
  Each mutation needs an Idempotency-Key header, and a request holds one mutation: the key names it.
  A repeated key with the same input replays the first outcome; with another input it is refused
  (idempotency_key_reused). Keys are shared with the REST API: the same key and input there is the same request.
  """
  type Mutation {
    """
    A deposit: pending until the bank settles it.
    """
    deposit(input: TransactionInput!): Transaction
    """
    A withdrawal: its amount is held from the available balance at once, refused when the available
    balance is short (insufficient_funds).
    """
    withdraw(input: TransactionInput!): Transaction
  }

  input TransactionInput {
    """
    1 to 10^12 minor units.
    """
    amount: MinorUnits!
    """
    One of the currencies the service accepts (ISO 4217).
    """
    currency: String!
    """
    The account to act on: the admin must name it; a user may name only their own.
    """
    userId: ID
    """
    At most 500 characters.
    """
    description: String
    metadata: Metadata
  }

  """
  Filters of a transaction list; createdFrom and createdTo are inclusive ISO 8601 instants.
  """
  input TransactionFilter {
    type: TransactionType
    status: TransactionStatus
    currency: String
    createdFrom: String
    createdTo: String
    minAmount: MinorUnits
    maxAmount: MinorUnits
  }

  type Caller {
    id: ID!
    kind: CallerKind!
    name: String
    email: String
    """
    ISO 8601.
    """
    createdAt: String
  }

  type Balance {
    userId: ID!
    balances: [CurrencyBalance!]!
  }

  type CurrencyBalance {
    currency: String!
    """
    What can be withdrawn now.
    """
    available: MinorUnits!
    """
    Held by withdrawals still open.
    """
    held: MinorUnits!
  }

  """
  Why a transaction failed: a stable code and a message for people.
  """
  type Failure {
    code: String!
    message: String!
  }

  """
  A deposit or a withdrawal. Instants are ISO 8601.
  """
  type Transaction {
    id: ID!
    type: TransactionType!
    userId: ID!
    amount: MinorUnits!
    currency: String!
    status: TransactionStatus!
    description: String
    metadata: Metadata
    failure: Failure
    bankReference: String
    """
    Calls made to the bank so far.
    """
    attempts: Int!
    createdAt: String!
    updatedAt: String!
    completedAt: String
  }

  """
  A transaction with its audit trail (what transaction(id) answers).
  """
  type AuditedTransaction {
    id: ID!
    type: TransactionType!
    userId: ID!
    amount: MinorUnits!
    currency: String!
    status: TransactionStatus!
    description: String
    metadata: Metadata
    failure: Failure
    bankReference: String
    attempts: Int!
    createdAt: String!
    updatedAt: String!
    completedAt: String
    """
    Every change of the transaction, in order.
    """
    events: [TransactionEvent!]!
  }

  """
  One entry of the audit trail: what happened, when, why, and on which request.
  """
  type TransactionEvent {
    seq: Int!
    """
    transaction_created, transaction_processing, transaction_succeeded, transaction_failed,
    attempt_failed or retry_requested.
    """
    type: String!
    """
    The status after the event; null for events that leave it as it was.
    """
    status: TransactionStatus
    at: String!
    """
    api, bank_response, bank_callback, poll, retry or admin.
    """
    cause: String!
    requestId: String
    bankReference: String
    attempts: Int
    failure: Failure
    """
    What went wrong on a failed bank attempt.
    """
    error: String
  }

  type TransactionConnection {
    edges: [TransactionEdge!]!
    pageInfo: PageInfo!
  }

  type TransactionEdge {
    node: Transaction!
    """
    The REST API's cursor of this transaction: after it, the next page starts.
    """
    cursor: String!
  }

  type PageInfo {
    hasNextPage: Boolean!
    endCursor: String
  }
`;

// Compile-time checks that two declarations of one shape agree (a schema and the type it reads or
// documents): `type _Checked = Assert<Same<z.output<typeof schema>, T>>` fails `tsc` when they drift.

/** `true` when A and B accept the same values (each is assignable to the other), else `false`. */
export type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

/** Compiles only when given `true`. */
export type Assert<T extends true> = T;

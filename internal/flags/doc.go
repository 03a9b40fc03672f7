// Package flags is the core of Flightdeck's feature flags: the definitions a
// release manager edits, their validation, and the evaluation that decides
// which variant a user sees. Deploying a version and releasing a feature are
// separate decisions; flags let the second one be made per environment, per
// segment of users and per percentage, without another deployment.
//
// The package is pure: no database and no HTTP. The store keeps the JSON of
// Flag, EnvState and Segment as written here, the REST API and the pages
// report *ValidationError field by field, and the OpenFeature Remote
// Evaluation Protocol (OFREP) endpoints answer from a Snapshot.
//
// # Model
//
// A Flag belongs to an app and names its variants (all of one Type) and its
// default variant. Each environment holds an EnvState for the flag: a kill
// switch (Enabled), ordered targeting Rules, and the DefaultRollout served when
// no rule matches. A Rule matches when its optional Segment matches and every
// one of its Clauses matches; the first matching rule wins, and it serves
// either a fixed variant or a weighted rollout. Segments are shared by the
// flags of an app: a segment matches a user whose targeting key is in
// IncludedKeys, never one in ExcludedKeys (exclusion wins), and otherwise one
// for whom all its Clauses match (a segment without clauses is a plain list).
//
// # Clauses
//
// A clause compares one context attribute with its values. An attribute that
// is missing, null, or of a type the operator does not compare never matches,
// not even for the negated operators (not_equals, not_in): a rule about
// "plan" says nothing about users without a plan. An attribute holding a list
// matches when any element matches (for not_equals and not_in: when no
// element does).
//
// # Bucketing
//
// Percentage rollouts are stable. A user's bucket is
//
//	bucket = uint64(first 8 bytes, big-endian, of SHA-1(flagKey + "." + salt + "." + targetingKey)) mod 10000
//
// a number of basis points in [0, 10000). The weights of a rollout are
// percentages with at most two decimals (a basis point each) and total 100;
// each variant takes the next run of buckets in the order listed. Growing the
// first variant's weight from 5 to 50 to 100 therefore keeps every user who
// already had it. The flag key in the hash makes flags bucket independently;
// all rollouts of one flag use the same bucket, so a user keeps their place
// when moving between rules. Changing the flag's Salt reshuffles everyone.
//
// # Evaluation
//
// Compile validates and prepares a flag once (regular expressions compiled,
// variant values compacted, bucket ranges laid out), so Evaluate parses
// nothing and, while flag key, salt and targeting key fit in 192 bytes,
// allocates nothing (BenchmarkEvaluateAll measures 100 mixed flags). Results
// carry OFREP reasons (STATIC, TARGETING_MATCH, SPLIT, DEFAULT, DISABLED,
// ERROR) and error codes. A rollout without a
// targeting key is an error result with TARGETING_KEY_MISSING, never a panic.
// A Snapshot holds the compiled flags of one app and environment with an ETag
// for OFREP bulk caching; snapshots are immutable and safe for concurrent use,
// so a cache can swap them atomically.
package flags

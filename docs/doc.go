// Package docs holds the contracts cloudcloud keeps: protocol.md (lamps),
// api.md (HTTP), mqtt.md and cluster.md. Each mirrors a contract kept outside
// the repository, in ../shared next to its root, which an outside test suite
// checks; the test of this package fails when a table row or an example of
// a contract is missing from its copy here, and when a relative link in the
// README or these files leads nowhere.
package docs

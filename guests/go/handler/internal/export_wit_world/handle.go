// Package export_wit_world implements the world's exports. The bindings
// that wit-bindgen generates at build time (package wit_exports) call
// Handle when the host calls the component's `handle` function; the name
// of this package is fixed by that generator.
package export_wit_world

// Handler is the function registered with handler.Handle.
var Handler func()

// Handle answers one request with the registered function.
func Handle() {
	if Handler == nil {
		panic("no handler registered: call handler.Handle from an init function")
	}
	Handler()
}

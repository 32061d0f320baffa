package serve

// andThen runs first, then second.
func andThen(first, second func()) func() {
	return func() {
		first()
		second()
	}
}

package generate

import "testing"

// BenchmarkNew measures a whole env.yml; RSA 3072 key generation dominates.
func BenchmarkNew(b *testing.B) {
	for _, kt := range keyTypes {
		b.Run(kt.String(), func(b *testing.B) {
			for b.Loop() {
				if _, err := New(Options{Domain: testDomain, KeyType: kt}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

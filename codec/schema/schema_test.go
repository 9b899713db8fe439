package schema

import (
	"strconv"
	"testing"
)

// The package's behaviour is tested against jsonschema/v6 in
// codec/schema/full (FuzzAgrees, FuzzAgreesData); this is its cost.

func BenchmarkCheck(b *testing.B) {
	s, err := Compile([]byte(`{"type":"object","required":["amount","currency","account","items"],"additionalProperties":false,
	 "properties":{"amount":{"type":"integer","minimum":1,"maximum":1000000},"currency":{"enum":["EUR","USD","GBP"]},
	 "account":{"type":"string","minLength":1,"maxLength":255},"note":{"type":"string","maxLength":200},
	 "items":{"type":"array","items":{"type":"object","required":["sku","price"],"properties":{"sku":{"type":"string"},"price":{"type":"number","minimum":0}}}}}}`))
	if err != nil {
		b.Fatal(err)
	}
	data := []byte(`{"amount":138,"currency":"EUR","account":"account-0","note":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","items":[{"sku":"s0","price":0.5},{"sku":"s1","price":1.5}]}`)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, reason, ok := s.Check(data); !ok {
			b.Fatal(reason)
		}
	}
}

// FuzzShortDecimal: shortDecimal rounds as strconv.ParseFloat does.
func FuzzShortDecimal(f *testing.F) {
	for _, seed := range []string{"0", "-0", "0.1", "1.5", "123456789012345", "0.000000000000001", "9.99999999999999", "-12.5"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, lit string) {
		got, ok := shortDecimal([]byte(lit))
		if !ok {
			return
		}
		want, err := strconv.ParseFloat(lit, 64)
		if err != nil || got != want {
			t.Fatalf("shortDecimal(%q) = %v, ParseFloat: %v, %v", lit, got, want, err)
		}
	})
}

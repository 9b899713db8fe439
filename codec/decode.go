package codec

import (
	"bytes"
	"encoding/json"
)

// DecodeJSON decodes a document for jq, keeping numbers exact (json.Number)
// as jq itself does for integers.
func DecodeJSON(doc []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(doc))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

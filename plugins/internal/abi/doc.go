// Package abi is the wire format of ABI "errclass v1": the input JSON the
// host writes into guest memory and the output JSON it reads back.
//
// It imports core and go-json only. Entry points: [AppendInput], which
// encodes without reflection so a classification costs one small buffer,
// and [DecodeOutput], which checks everything a guest may get wrong.
package abi

// Package abi is the wire format of ABI "errclass v1": the input JSON the
// host writes into guest memory and the output JSON it reads back.
//
// It is also where the plugin boundary is drawn for secrets: [NewInput]
// keeps only the allow-listed headers and redacts every string a guest
// can read (secret.Redact with the known secrets), so nothing a guest is
// given carries a credential.
//
// It imports core and go-json only. Entry points: [NewInput] and
// [Input.Append], which encode without reflection so a classification
// costs one small buffer; [AppendInput], both in one call without known
// secrets; and [DecodeOutput], which checks everything a guest may get
// wrong, millisecond ranges included.
package abi

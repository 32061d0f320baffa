package junit

import (
	"bytes"
	"encoding/xml"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestClean(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain\ttext\r\n", "plain\ttext\r\n"},
		{"\x1b[31mred\x1b[0m", "\uFFFD[31mred\uFFFD[0m"},
		{"nul\x00", "nul\uFFFD"},
		{"ünïcode ✓", "ünïcode ✓"},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, Clean(tc.in), "%q", tc.in)
	}
}

// TestWriteDerivesCounts: tests, failures and skipped come from the cases,
// ids count from 0, and an empty suite still has the required elements.
func TestWriteDerivesCounts(t *testing.T) {
	reason := "later"
	var buf bytes.Buffer
	require.NoError(t, Write(&buf,
		Suite{Name: "a", Package: "p", Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Elapsed: 1500 * time.Millisecond,
			Cases: []Case{
				{Name: "ok", Classname: "c"},
				{Name: "bad", Classname: "c", Failure: &Failure{Message: "m", Type: "t", Text: "x ]]> y"}},
				{Name: "skip", Classname: "c", Skipped: &reason},
			}},
		Suite{Name: "empty", Package: "p"},
	))
	var doc struct {
		Suites []struct {
			ID        int       `xml:"id,attr"`
			Tests     int       `xml:"tests,attr"`
			Failures  int       `xml:"failures,attr"`
			Skipped   int       `xml:"skipped,attr"`
			Time      string    `xml:"time,attr"`
			Timestamp string    `xml:"timestamp,attr"`
			Hostname  string    `xml:"hostname,attr"`
			Props     *struct{} `xml:"properties"`
			Out       *string   `xml:"system-out"`
			Err       *string   `xml:"system-err"`
			Cases     []struct {
				Failure *struct {
					Text string `xml:",chardata"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	require.NoError(t, xml.Unmarshal(buf.Bytes(), &doc), buf.String())
	require.Len(t, doc.Suites, 2)
	a, e := doc.Suites[0], doc.Suites[1]
	assert.Equal(t, []int{0, 3, 1, 1}, []int{a.ID, a.Tests, a.Failures, a.Skipped})
	assert.Equal(t, "1.500", a.Time)
	assert.Equal(t, "2026-01-02T03:04:05", a.Timestamp)
	assert.Equal(t, "localhost", a.Hostname)
	assert.Equal(t, "x ]]> y", a.Cases[1].Failure.Text)
	assert.Equal(t, 1, e.ID)
	assert.Zero(t, e.Tests)
	assert.NotNil(t, e.Props, "properties is required even when empty")
	assert.NotNil(t, e.Out, "system-out is required")
	assert.NotNil(t, e.Err, "system-err is required")
}

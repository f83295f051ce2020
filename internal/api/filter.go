package api

import (
	"crypto/sha256"
	"fmt"
	"strings"
	"time"
	"unicode"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/internal/store"
)

// jobFilter is a parsed ListJobs filter: a conjunction of comparisons.
type jobFilter struct {
	terms         []filterTerm
	createdAfter  time.Time // exclusive
	createdBefore time.Time // exclusive
	canonical     string    // normalised text; page tokens are bound to it
}

type filterTerm struct {
	field string // state, type, queue, labels.<key>
	neg   bool
	value string
}

// maxFilterTerms bounds the work one filter can ask for.
const maxFilterTerms = 20

// parseFilter parses the AIP-160 subset documented on ListJobs. Errors are
// meant for the client and name what is wrong.
func parseFilter(s string) (*jobFilter, error) {
	f := &jobFilter{}
	toks, err := tokenize(s)
	if err != nil {
		return nil, err
	}
	var canon []string
	for i := 0; i < len(toks); {
		if len(f.terms) >= maxFilterTerms || len(canon) >= maxFilterTerms {
			return nil, fmt.Errorf("at most %d comparisons are allowed", maxFilterTerms)
		}
		if i+3 > len(toks) {
			return nil, fmt.Errorf("incomplete comparison after %q; expected `field op value`", strings.Join(toks[i:], " "))
		}
		field, op, value := toks[i], toks[i+1], unquote(toks[i+2])
		i += 3
		switch {
		case field == "state":
			if _, ok := jobforgev1.Job_State_value[value]; !ok || value == "STATE_UNSPECIFIED" {
				return nil, fmt.Errorf("unknown state %q; use PENDING, SCHEDULED, RUNNING, RETRYING, SUCCEEDED, FAILED or CANCELLED", value)
			}
			fallthrough
		case field == "type" || field == "queue" || (strings.HasPrefix(field, "labels.") && len(field) > len("labels.")):
			if op != "=" && op != "!=" {
				return nil, fmt.Errorf("%s supports = and !=, not %q", field, op)
			}
			f.terms = append(f.terms, filterTerm{field: field, neg: op == "!=", value: value})
		case field == "create_time":
			t, err := time.Parse(time.RFC3339Nano, value)
			if err != nil {
				return nil, fmt.Errorf("create_time needs an RFC 3339 timestamp such as \"2026-01-02T15:04:05Z\", got %q", value)
			}
			switch op {
			case ">":
				f.after(t)
			case ">=":
				f.after(t.Add(-time.Microsecond))
			case "<":
				f.before(t)
			case "<=":
				f.before(t.Add(time.Microsecond))
			default:
				return nil, fmt.Errorf("create_time supports <, <=, > and >=, not %q", op)
			}
		default:
			return nil, fmt.Errorf("unknown field %q; filterable fields are state, type, queue, labels.<key> and create_time", field)
		}
		canon = append(canon, field+" "+op+" "+quote(value))
		if i < len(toks) {
			if toks[i] != "AND" {
				return nil, fmt.Errorf("expected AND between comparisons, got %q (OR is not supported)", toks[i])
			}
			i++
			if i == len(toks) {
				return nil, fmt.Errorf("filter ends with AND")
			}
		}
	}
	f.canonical = strings.Join(canon, " AND ")
	return f, nil
}

func (f *jobFilter) after(t time.Time) {
	if f.createdAfter.IsZero() || t.After(f.createdAfter) {
		f.createdAfter = t
	}
}

func (f *jobFilter) before(t time.Time) {
	if f.createdBefore.IsZero() || t.Before(f.createdBefore) {
		f.createdBefore = t
	}
}

// hash binds page tokens to the filter they were issued for.
func (f *jobFilter) hash() []byte {
	h := sha256.Sum256([]byte(f.canonical))
	return h[:8]
}

func (f *jobFilter) match(r *store.Record) bool {
	for _, t := range f.terms {
		var v string
		switch {
		case t.field == "state":
			v = string(r.State)
		case t.field == "type":
			v = r.Type
		case t.field == "queue":
			v = r.Queue
		default:
			v = r.Labels[strings.TrimPrefix(t.field, "labels.")]
		}
		if (v == t.value) == t.neg {
			return false
		}
	}
	return true
}

func tokenize(s string) ([]string, error) {
	var toks []string
	rs := []rune(s)
	for i := 0; i < len(rs); {
		c := rs[i]
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '"':
			j := i + 1
			for j < len(rs) && rs[j] != '"' {
				if rs[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(rs) {
				return nil, fmt.Errorf("unterminated string starting at offset %d", i)
			}
			toks = append(toks, string(rs[i:j+1]))
			i = j + 1
		case strings.ContainsRune("=!<>", c):
			j := i + 1
			if j < len(rs) && rs[j] == '=' {
				j++
			}
			op := string(rs[i:j])
			if op == "!" {
				return nil, fmt.Errorf("unexpected '!' at offset %d", i)
			}
			toks = append(toks, op)
			i = j
		default:
			j := i
			for j < len(rs) && !unicode.IsSpace(rs[j]) && !strings.ContainsRune("=!<>\"", rs[j]) {
				j++
			}
			toks = append(toks, string(rs[i:j]))
			i = j
		}
	}
	return toks, nil
}

// quote is the inverse of unquote.
func quote(s string) string {
	return `"` + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `"`, `\"`) + `"`
}

func unquote(s string) string {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return s
	}
	var b strings.Builder
	in := s[1 : len(s)-1]
	for i := 0; i < len(in); i++ {
		if in[i] == '\\' && i+1 < len(in) {
			i++
		}
		b.WriteByte(in[i])
	}
	return b.String()
}

package serviceaccount

import (
	"regexp"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Input limits. Names are shown in lists and logs, so they are short and printable; the
// description is free text but bounded so an item stays far below DynamoDB's 400 KB.
const (
	MaxNameLength        = 64
	MaxDescriptionLength = 500
	MaxActorLength       = 256
)

// ValidOrgID reports whether id can name an organisation: 1–64 of A–Z, a–z, 0–9, '_' and
// '-'. Org ids are embedded in keys and policy resources, so anything outside a conservative
// alphabet is refused before it reaches the store.
func ValidOrgID(id string) bool {
	return len(id) >= 1 && len(id) <= 64 && strings.IndexFunc(id, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-')
	}) < 0
}

// ValidServiceAccountID reports whether id has the shape of a service account id: "sa_" and a
// ULID.
func ValidServiceAccountID(id string) bool { return prefixedULID(id, "sa_") }

// ValidTokenID reports whether id has the shape of a token id: "tok_" and a ULID.
func ValidTokenID(id string) bool { return prefixedULID(id, "tok_") }

// prefixedULID reports whether id is prefix and 26 characters of Crockford's base32 in upper
// case (digits, and letters but I, L, O and U), as ULIDs are written. The id checks are plain
// loops: the authorizer checks ids on every cold start's first request, and compiling regular
// expressions at package initialisation cost every function's cold start 0.4 ms.
func prefixedULID(id, prefix string) bool {
	rest, ok := strings.CutPrefix(id, prefix)
	return ok && len(rest) == 26 && strings.IndexFunc(rest, func(r rune) bool {
		return !(r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' && r != 'I' && r != 'L' && r != 'O' && r != 'U')
	}) < 0
}

// normalizeName trims name, puts it in Unicode NFC (so the composed and decomposed spellings of
// "café" are one name) and checks it against the name rules, returning the normalised name or a
// FieldError for field. Names: 1–64 characters, valid UTF-8, no control or invisible format
// characters and no line or paragraph separators (which would let two names look identical or
// break the lines they are shown in), and not blank-looking: a name made only of spaces and
// characters that show nothing, such as U+3164 HANGUL FILLER or U+2800 BRAILLE PATTERN BLANK,
// is not a name. Spaces within a name are fine: the seed's examples include "Claude Code".
func normalizeName(field, name string, required bool) (string, *FieldError) {
	if !utf8.ValidString(name) {
		return "", &FieldError{field, "must be valid UTF-8"}
	}
	name = strings.TrimSpace(norm.NFC.String(name))
	switch {
	case name == "" && required:
		return "", &FieldError{field, "is required"}
	case utf8.RuneCountInString(name) > MaxNameLength:
		return "", &FieldError{field, "must be at most 64 characters"}
	case strings.ContainsAny(name, "\u2028\u2029"):
		return "", &FieldError{field, "must not contain line or paragraph separators"}
	case strings.IndexFunc(name, disallowedInName) >= 0:
		return "", &FieldError{field, "must not contain control characters"}
	case name != "" && strings.IndexFunc(name, visible) < 0:
		return "", &FieldError{field, "must contain visible characters, not only blank ones"}
	}
	return name, nil
}

func disallowedInName(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError
}

// visible reports whether r shows anything: not a space, not a character Unicode says to
// ignore when it cannot be shown (Hangul fillers among them), not a braille blank.
func visible(r rune) bool {
	return !unicode.IsSpace(r) && !unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r) &&
		!unicode.Is(unicode.Mn, r) && r != '\u2800'
}

func validateDescription(d string) (string, *FieldError) {
	d = strings.TrimSpace(d)
	switch {
	case !utf8.ValidString(d):
		return "", &FieldError{"description", "must be valid UTF-8"}
	case utf8.RuneCountInString(d) > MaxDescriptionLength:
		return "", &FieldError{"description", "must be at most 500 characters"}
	case strings.IndexFunc(d, func(r rune) bool { return r != '\n' && r != '\t' && disallowedInName(r) }) >= 0:
		return "", &FieldError{"description", "must not contain control characters"}
	}
	return d, nil
}

// nameKey is the form in which names are compared for uniqueness: NFKC, then Unicode's simple
// case folding, so that names differing in case, in composition or in compatibility forms
// (fullwidth letters, ligatures) are one name. Each rune goes to the smallest of its case
// orbit, which keeps the keys of names stored before (ASCII names fold to upper case) as they
// were. Full folding (ß to ss) would need x/text/cases, whose tables every function would
// carry for a difference no one would mistake for the same name.
func nameKey(name string) string {
	name = norm.NFKC.String(name)
	return strings.Map(func(r rune) rune {
		// Fold to the smallest rune of the fold orbit so 'K', 'k' and the Kelvin sign agree.
		min := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f < min {
				min = f
			}
		}
		return min
	}, name)
}

// Naming advice codes, after the seed's "Naming Conventions": names should say which tool, team
// or system uses the account.
const (
	WarnVagueName    = "vague_name"
	WarnNoPurpose    = "no_purpose"
	WarnPersonalName = "personal_name"
)

// adviceRules are built on first use: only create needs them, and building the maps and
// regular expressions at package init cost every function's cold start.
var adviceRules = sync.OnceValue(func() (r struct {
	vagueNames, personalWords        map[string]bool
	noPurposePattern, wordSeparators *regexp.Regexp
}) {
	r.vagueNames = map[string]bool{
		"test": true, "tests": true, "testing": true, "tmp": true, "temp": true, "foo": true,
		"bar": true, "baz": true, "demo": true, "example": true, "sample": true, "default": true,
		"new": true, "misc": true, "other": true, "stuff": true, "thing": true, "x": true,
		"xx": true, "xxx": true, "asdf": true, "qwerty": true, "sa": true, "account": true,
		"service account": true, "serviceaccount": true, "token": true, "key": true, "api": true,
		"api key": true, "apikey": true, "secret": true, "credentials": true, "bot": true,
	}
	r.noPurposePattern = regexp.MustCompile(
		`^(api ?key|api|key|token|secret|sa|service ?account|account|test|temp|tmp|cred(ential)?s?|bot|client|app|integration)( ?\d+)$`)
	r.personalWords = map[string]bool{
		"my": true, "mine": true, "personal": true, "me": true,
		"john": true, "jane": true, "james": true, "mary": true, "robert": true, "patricia": true,
		"michael": true, "jennifer": true, "william": true, "linda": true, "david": true,
		"elizabeth": true, "richard": true, "barbara": true, "joseph": true, "susan": true,
		"thomas": true, "jessica": true, "charles": true, "sarah": true, "daniel": true,
		"karen": true, "matthew": true, "nancy": true, "anthony": true, "lisa": true,
		"emily": true, "paul": true, "emma": true, "steven": true, "anna": true, "andrew": true,
		"olivia": true, "kevin": true, "sophia": true, "brian": true, "laura": true, "george": true,
		"alice": true, "bob": true, "peter": true, "maria": true, "alex": true,
		"chris": true, "tom": true, "mike": true, "dave": true, "steve": true, "kate": true,
		"ben": true, "dan": true, "nick": true, "tim": true, "joe": true,
		"carlos": true, "juan": true, "luis": true, "raj": true,
		"priya": true, "ahmed": true, "mohammed": true, "fatima": true, "yuki": true,
	}
	r.wordSeparators = regexp.MustCompile(`[\s\-_.:/]+`)
	return r
})

// NamingAdvice returns warnings for names the seed's naming conventions advise against: vague
// ones (`test`), ones that do not describe a purpose (`api-key-1`) and personal ones
// (`john-token`). Advice never blocks creation.
func NamingAdvice(name string) []Warning {
	rules := adviceRules()
	words := rules.wordSeparators.Split(strings.ToLower(strings.TrimSpace(name)), -1)
	spaced := strings.TrimSpace(strings.Join(words, " "))
	var out []Warning
	switch {
	case rules.vagueNames[spaced]:
		out = append(out, Warning{WarnVagueName,
			"The name is too vague; say which tool, team or system uses this account (e.g. claude-code-dev-team)."})
	case rules.noPurposePattern.MatchString(spaced):
		out = append(out, Warning{WarnNoPurpose,
			"The name doesn't describe a purpose; say what the account is for (e.g. github-actions-prod)."})
	}
	for _, w := range words {
		if rules.personalWords[w] {
			out = append(out, Warning{WarnPersonalName,
				"The name looks personal; service accounts shouldn't be tied to individuals."})
			break
		}
	}
	return out
}

package secretslocal

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// GenerateSecretString is the part of AWS::SecretsManager::Secret's GenerateSecretString the
// local stack honours; a property it does not know is an error, never silently ignored.
type GenerateSecretString struct {
	SecretStringTemplate string
	GenerateStringKey    string
	PasswordLength       int  // default 32, as in AWS
	ExcludePunctuation   bool // default false, as in AWS
	ExcludeCharacters    string
}

// punctuation is the set Secrets Manager draws from unless ExcludePunctuation.
const (
	alphanumerics = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	punctuation   = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
)

// ParseGenerate reads a template's GenerateSecretString properties.
func ParseGenerate(props map[string]any) (GenerateSecretString, error) {
	g := GenerateSecretString{PasswordLength: 32}
	for k, v := range props {
		var ok bool
		switch k {
		case "SecretStringTemplate":
			g.SecretStringTemplate, ok = v.(string)
		case "GenerateStringKey":
			g.GenerateStringKey, ok = v.(string)
		case "PasswordLength":
			g.PasswordLength, ok = v.(int)
		case "ExcludePunctuation":
			g.ExcludePunctuation, ok = v.(bool)
		case "ExcludeCharacters":
			g.ExcludeCharacters, ok = v.(string)
		default:
			return GenerateSecretString{}, fmt.Errorf("GenerateSecretString.%s is not supported by the local stack", k)
		}
		if !ok {
			return GenerateSecretString{}, fmt.Errorf("GenerateSecretString.%s: unexpected value %v", k, v)
		}
	}
	if (g.SecretStringTemplate == "") != (g.GenerateStringKey == "") {
		return GenerateSecretString{}, errors.New("GenerateSecretString: SecretStringTemplate and GenerateStringKey go together")
	}
	if g.PasswordLength < 1 || g.PasswordLength > 4096 {
		return GenerateSecretString{}, fmt.Errorf("GenerateSecretString.PasswordLength %d: want 1 to 4096", g.PasswordLength)
	}
	return g, nil
}

// Generate makes the secret string CloudFormation would: a random password of the spec's
// characters, alone or under GenerateStringKey in the SecretStringTemplate object. r is the
// random source (crypto/rand.Reader); characters are drawn without modulo bias.
func (g GenerateSecretString) Generate(r io.Reader) (string, error) {
	chars := alphanumerics
	if !g.ExcludePunctuation {
		chars += punctuation
	}
	chars = strings.Map(func(c rune) rune {
		if strings.ContainsRune(g.ExcludeCharacters, c) {
			return -1
		}
		return c
	}, chars)
	if chars == "" {
		return "", errors.New("generate secret: every character is excluded")
	}
	limit := 256 - 256%len(chars) // bytes at or above it would bias the draw
	password := make([]byte, 0, g.PasswordLength)
	buf := make([]byte, g.PasswordLength)
	for round := 0; len(password) < g.PasswordLength; round++ {
		if round == 64 {
			return "", errors.New("generate secret: the random source yields too few usable bytes")
		}
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("generate secret: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(password) < g.PasswordLength {
				password = append(password, chars[int(b)%len(chars)])
			}
		}
	}
	clear(buf)
	if g.GenerateStringKey == "" {
		return string(password), nil
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(g.SecretStringTemplate), &doc); err != nil || doc == nil {
		return "", errors.New("generate secret: SecretStringTemplate is not a JSON object")
	}
	doc[g.GenerateStringKey] = string(password)
	out, err := json.Marshal(doc)
	return string(out), err
}

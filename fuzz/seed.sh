#!/bin/sh
# Fills a libFuzzer corpus folder with seeds for fuzz/json_fuzz.c: sh fuzz/seed.sh DIR
# The JSONTestSuite y_ files when the suite is present (JSON_TEST_SUITE, else
# ../shared/JSONTestSuite/test_parsing or /work/shared/JSONTestSuite/test_parsing), plus
# hand-written job-like documents. Idempotent (files are rewritten with the same content),
# no network.
set -eu

dir=${1:?usage: sh fuzz/seed.sh DIR}
mkdir -p "$dir"

suite=${JSON_TEST_SUITE:-}
if [ -z "$suite" ]; then
  for d in ../shared/JSONTestSuite/test_parsing /work/shared/JSONTestSuite/test_parsing; do
    if [ -d "$d" ]; then suite=$d; break; fi
  done
fi
n=0
if [ -n "$suite" ] && [ -d "$suite" ]; then
  for f in "$suite"/y_*.json; do
    [ -f "$f" ] || continue
    cp "$f" "$dir/seed_$(basename "$f")"
    n=$((n + 1))
  done
fi

seed() { # seed NAME TEXT; TEXT is a printf format: \\ for a backslash, \ooo (octal) for a byte
  printf "$2" > "$dir/seed_hand_$1.json"
  n=$((n + 1))
}

seed job '{"input":{"prompt":"a cat wearing a hat","steps":30,"guidance":7.5,"seed":1234567890123,"sizes":[512,768]},"metadata":{"id":"my-id","user":"u-42"},"webhook":"https://example.com/hook"}'
seed job_reply '{"id":"5b8b1e8e-8c2f-4c3e-9b1a-2b7f3e6d9a10","input":{"prompt":"x"},"metadata":{},"webhook":null,"status":"pending","events":[{"action":"created","time":"2024-01-02T03:04:05.1234567Z"}],"create_time":"2024-01-02T03:04:05.1234567Z","update_time":"2024-01-02T03:04:05.1234567Z"}'
seed list '{"items":[],"page":1,"page_size":100,"total_size":0}'
seed problem '{"type":"https://tools.ietf.org/html/rfc9110#section-15.5.1","title":"Bad Request","status":400,"detail":"input is required","instance":"/x","errors":{"input":["required"]}}'
seed bigints '[9223372036854775807,-9223372036854775808,9223372036854775808,-9223372036854775809,9007199254740993,18446744073709551615,0,-0,1e19,100000000000000000000000]'
seed floats '[0.1,2.0,-0.0,1e-320,4.9e-324,2.2250738585072014e-308,1.7976931348623157e308,5e-324,0.30000000000000004,123456789.123456789,1E+2,1e-7,3.141592653589793]'
seed huge_exp '[1.0e400,-1e400,1e-400]'
seed exp_digits '[-1e-99999999999999999999999,0e99999999999,1e000000000000000000001,-0.0e+400]'
seed exp_huge '[1e99999999999999999999999]'
seed escapes '"\\"\\\\\\/\\b\\f\\n\\r\\t\\u0000\\u001f\\u007f\\u00e9\\u20ac\\uFFFF"'
seed surrogates '["\\ud83d\\ude00","\\uD834\\uDD1E","\\udbff\\udfff","\\ud800\\udc00","\360\237\230\200","\342\202\254","\303\251"]'
seed lone_surrogate '["\\ud800","\\udc00x","\\ud800\\u0041"]'
seed bad_utf8 '["\300\257","\355\240\200","\364\220\200\200","\342\202"]'
seed keys '{"":0,"a":{"b":{"c":[1,{"d":[[],{}]}]}},"\\u0000":1,"1":2,"a":3}'
seed empty '[[],{},[[]],[{}],{"a":[]},""]'
seed literals '[true,false,null,[null],{"n":null}]'
seed whitespace ' \t\r\n[ 1 , { "a" : 2 } ]\n '
seed trailing '[1,2,]'
seed comment '/* c */ {"a":1}'

# Deep nesting: 999 and 1001 arrays, objects 600 deep.
deep() { # deep NAME OPEN CLOSE COUNT MIDDLE
  i=0 o='' c=''
  while [ "$i" -lt "$4" ]; do o="$o$2"; c="$c$3"; i=$((i + 1)); done
  printf '%s%s%s' "$o" "$5" "$c" > "$dir/seed_hand_$1.json"
  n=$((n + 1))
}
deep deep_999 '[' ']' 999 '1'
deep deep_1001 '[' ']' 1001 ''
deep deep_objects '{"a":' '}' 600 '[]'

# Numbers whose digits and exponent pull against each other (the magnitude decides range).
zeros() { printf "%${1}s" '' | tr ' ' 0; }
printf '[0.%s1e3001,0.%s1e3309,1%se-3000,-0.%s1e-3000]' "$(zeros 3000)" "$(zeros 3000)" \
  "$(zeros 3000)" "$(zeros 3000)" > "$dir/seed_hand_long_numbers.json"
printf '[0.%s1e3310,1%s]' "$(zeros 3000)" "$(zeros 400)" > "$dir/seed_hand_long_numbers_range.json"
n=$((n + 2))

echo "seed.sh: $n seeds in $dir"

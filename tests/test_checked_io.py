"""lib/checked_io: the checked JSON reader, the output-place checks and the argument ranges the tools share."""
import argparse
import json

import pytest

from lib.checked_io import (check_output_file, check_output_folder, file_error, fraction_between, int_at_least,
                            read_json)
from lib.errors import CreamError, InputFileError, OutputError


@pytest.mark.parametrize('text, expected', [
    (None, 'not found'),
    ('', 'is empty'),
    ('  \n', 'is empty'),
    ('{"a": [1, 2', 'is not valid JSON, truncated or damaged'),
    ('{"a": NaN}', 'holds NaN'),
    ('{"a": -Infinity}', 'holds -Infinity'),
    ('[1, 2]', 'holds a list where an object belongs'),
    ('"text"', 'holds a string where an object belongs'),
])
def test_a_bad_json_file_is_one_error_naming_it(tmp_path, text, expected):
    path = tmp_path / 'data.json'
    if text is not None:
        path.write_text(text)
    with pytest.raises(InputFileError) as info:
        read_json(str(path), dict, 'result', 'write it again')
    message = str(info.value)
    assert message.startswith(f'result {path} ') and expected in message and message.endswith('; write it again')
    assert isinstance(info.value, CreamError) and '\n' not in message


def test_a_folder_or_undecodable_file_is_named_and_a_good_one_is_read(tmp_path):
    with pytest.raises(InputFileError, match='is a folder, not a JSON file'):
        read_json(str(tmp_path))
    (tmp_path / 'bin.json').write_bytes(b'\xff\xfe\x00')
    with pytest.raises(InputFileError, match='bin.json cannot be read'):
        read_json(str(tmp_path / 'bin.json'))
    (tmp_path / 'ok.json').write_text(json.dumps({'a': [1, 2.5]}))
    assert read_json(str(tmp_path / 'ok.json')) == {'a': [1, 2.5]}
    assert read_json(str(tmp_path / 'ok.json'), (dict, list)) == {'a': [1, 2.5]}
    assert str(file_error('f.json', 'lacks "x"', 'fix it')) == 'f.json lacks "x"; fix it'


def test_output_places_are_checked_without_creating_anything(tmp_path):
    (tmp_path / 'a_file').write_text('x')
    check_output_file(str(tmp_path / 'new' / 'deeper' / 'out.json'))  # to be created when written
    check_output_file(str(tmp_path / 'out.json'))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a_file']
    with pytest.raises(OutputError, match='--report .* is a folder'):
        check_output_file(str(tmp_path), '--report')
    with pytest.raises(OutputError, match=r'a_file is a file, not a folder; choose a writable folder for --out'):
        check_output_file(str(tmp_path / 'a_file' / 'out.json'))
    with pytest.raises(OutputError, match='--out is empty'):
        check_output_file('')
    with pytest.raises(OutputError, match='is a file, not a folder'):
        check_output_folder(str(tmp_path / 'a_file'))
    with pytest.raises(OutputError, match='exists and is not empty'):
        check_output_folder(str(tmp_path), empty=True)
    check_output_folder(str(tmp_path / 'new_folder'), empty=True)
    assert not (tmp_path / 'new_folder').exists()


def test_argument_ranges():
    assert int_at_least(1)('3') == 3
    assert fraction_between(0, 1)('0.25') == 0.25
    for parse, text in ((int_at_least(1), '0'), (int_at_least(0), 'x'), (fraction_between(0, 1), '1'),
                        (fraction_between(0, 1), 'nan'), (fraction_between(0, 1), 'half')):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)

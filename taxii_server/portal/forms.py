"""The portal's forms (Flask-WTF): each one carries a CSRF token."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import DateField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

from .authoring import KINDS



def choices(pairs) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]


TLP_CHOICES = choices([("clear", "TLP:CLEAR"), ("green", "TLP:GREEN"), ("amber", "TLP:AMBER"),
                       ("amber+strict", "TLP:AMBER+STRICT"), ("red", "TLP:RED")])


class SignInForm(FlaskForm):
    operator = StringField("Operator id", validators=[DataRequired(), Length(max=64)],
                           render_kw={"autocomplete": "username"})
    key = PasswordField("API key", validators=[DataRequired(), Length(max=200)],
                        render_kw={"autocomplete": "current-password"})


class ActionForm(FlaskForm):
    """A button that changes something: only its CSRF token."""


class IndicatorsForm(FlaskForm):
    destination = SelectField("Send to", validators=[DataRequired()])
    name = StringField("Title", validators=[Length(max=200)])
    values = TextAreaField("Indicator values, one a line", validators=[DataRequired(), Length(max=200_000)],
                           render_kw={"rows": 6, "spellcheck": "false"})
    kind = SelectField("Kind of value", choices=choices((key, kind.label) for key, kind in KINDS.items()))
    tlp = SelectField("TLP marking", choices=TLP_CHOICES, default="amber")
    description = TextAreaField("Description", validators=[Length(max=20_000)], render_kw={"rows": 4})
    valid_from = DateField("Valid from (UTC)", validators=[Optional()])
    valid_until = DateField("Valid until (UTC, optional)", validators=[Optional()])


class AdvisoryForm(IndicatorsForm):
    name = StringField("Advisory title", validators=[DataRequired(), Length(max=200)])


class UploadForm(FlaskForm):
    destination = SelectField("Store in", validators=[DataRequired()])
    bundle = FileField("STIX 2.1 bundle (JSON)", validators=[FileRequired()])

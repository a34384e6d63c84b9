"""organisation and households; private replies

The five pioneer teams (先锋队) are seeded here: they are the township's fixed structure.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 15:56:53.962941
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('teams',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_teams')),
    sa.UniqueConstraint('name', name=op.f('uq_teams_name'))
    )
    teams = sa.table('teams', sa.column('id', sa.Integer), sa.column('name', sa.String))
    op.bulk_insert(teams, [{'id': n, 'name': name} for n, name in enumerate(("帮扶", "建房", "产业", "就业", "督查"), 1)])
    op.create_table('townships',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_townships')),
    sa.UniqueConstraint('name', name=op.f('uq_townships_name'))
    )
    op.create_table('areas',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('township_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['township_id'], ['townships.id'], name=op.f('fk_areas_township_id_townships')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_areas')),
    sa.UniqueConstraint('township_id', 'name', name='uq_areas_township_name')
    )
    op.create_table('cadres',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('township_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('wecom_userid', sa.String(length=64), nullable=True),
    sa.Column('openid', sa.String(length=64), nullable=True),
    sa.Column('code', sa.String(length=16), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['township_id'], ['townships.id'], name=op.f('fk_cadres_township_id_townships')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cadres')),
    sa.UniqueConstraint('code', name=op.f('uq_cadres_code')),
    sa.UniqueConstraint('openid', name=op.f('uq_cadres_openid')),
    sa.UniqueConstraint('township_id', 'name', 'phone', name='uq_cadres_township_name_phone')
    )
    op.create_table('messaging_groups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('township_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('robot_url', sa.Text(), nullable=False),
    sa.Column('covers_all', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['township_id'], ['townships.id'], name=op.f('fk_messaging_groups_township_id_townships')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_messaging_groups')),
    sa.UniqueConstraint('township_id', 'name', name='uq_messaging_groups_township_name')
    )
    op.create_table('cadre_teams',
    sa.Column('cadre_id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['cadre_id'], ['cadres.id'], name=op.f('fk_cadre_teams_cadre_id_cadres'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_cadre_teams_team_id_teams'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('cadre_id', 'team_id', name=op.f('pk_cadre_teams'))
    )
    op.create_table('group_areas',
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('area_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['area_id'], ['areas.id'], name=op.f('fk_group_areas_area_id_areas'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['group_id'], ['messaging_groups.id'], name=op.f('fk_group_areas_group_id_messaging_groups'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('group_id', 'area_id', name=op.f('pk_group_areas'))
    )
    op.create_table('group_notices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=True),
    sa.Column('robot_url', sa.Text(), nullable=False),
    sa.Column('markdown', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['group_id'], ['messaging_groups.id'], name=op.f('fk_group_notices_group_id_messaging_groups'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_group_notices'))
    )
    with op.batch_alter_table('group_notices', schema=None) as batch_op:
        batch_op.create_index('ix_group_notices_pending', ['robot_url', 'sent_at'], unique=False)

    op.create_table('group_teams',
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['messaging_groups.id'], name=op.f('fk_group_teams_group_id_messaging_groups'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_group_teams_team_id_teams'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('group_id', 'team_id', name=op.f('pk_group_teams'))
    )
    op.create_table('villages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('township_id', sa.Integer(), nullable=False),
    sa.Column('area_id', sa.Integer(), nullable=True),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('tag_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['area_id'], ['areas.id'], name=op.f('fk_villages_area_id_areas')),
    sa.ForeignKeyConstraint(['township_id'], ['townships.id'], name=op.f('fk_villages_township_id_townships')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_villages')),
    sa.UniqueConstraint('township_id', 'name', name='uq_villages_township_name')
    )
    op.create_table('cadre_villages',
    sa.Column('cadre_id', sa.Integer(), nullable=False),
    sa.Column('village_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['cadre_id'], ['cadres.id'], name=op.f('fk_cadre_villages_cadre_id_cadres'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['village_id'], ['villages.id'], name=op.f('fk_cadre_villages_village_id_villages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('cadre_id', 'village_id', name=op.f('pk_cadre_villages'))
    )
    op.create_table('group_villages',
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('village_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['messaging_groups.id'], name=op.f('fk_group_villages_group_id_messaging_groups'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['village_id'], ['villages.id'], name=op.f('fk_group_villages_village_id_villages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('group_id', 'village_id', name=op.f('pk_group_villages'))
    )
    op.create_table('hamlets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('village_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['village_id'], ['villages.id'], name=op.f('fk_hamlets_village_id_villages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hamlets')),
    sa.UniqueConstraint('village_id', 'name', name='uq_hamlets_village_name')
    )
    op.create_table('households',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('township_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=32), nullable=False),
    sa.Column('head_name', sa.String(length=32), nullable=False),
    sa.Column('village_id', sa.Integer(), nullable=False),
    sa.Column('hamlet_id', sa.Integer(), nullable=True),
    sa.Column('population', sa.Integer(), nullable=True),
    sa.Column('labourers', sa.Integer(), nullable=True),
    sa.Column('work_intent', sa.String(length=255), nullable=True),
    sa.Column('helper_id', sa.Integer(), nullable=True),
    sa.Column('team_id', sa.Integer(), nullable=True),
    sa.Column('lifted', sa.Boolean(), nullable=False),
    sa.Column('monitored', sa.Boolean(), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=True),
    sa.Column('code', sa.String(length=16), nullable=True),
    sa.Column('code_issued_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('qr_scene', sa.String(length=64), nullable=True),
    sa.Column('qr_url', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['hamlet_id'], ['hamlets.id'], name=op.f('fk_households_hamlet_id_hamlets')),
    sa.ForeignKeyConstraint(['helper_id'], ['cadres.id'], name=op.f('fk_households_helper_id_cadres')),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_households_team_id_teams')),
    sa.ForeignKeyConstraint(['township_id'], ['townships.id'], name=op.f('fk_households_township_id_townships')),
    sa.ForeignKeyConstraint(['village_id'], ['villages.id'], name=op.f('fk_households_village_id_villages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_households')),
    sa.UniqueConstraint('code', name=op.f('uq_households_code')),
    sa.UniqueConstraint('township_id', 'number', name='uq_households_township_number')
    )
    with op.batch_alter_table('households', schema=None) as batch_op:
        batch_op.create_index('ix_households_helper', ['helper_id'], unique=False)
        batch_op.create_index('ix_households_village', ['village_id'], unique=False)

    op.create_table('household_bindings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('household_id', sa.Integer(), nullable=False),
    sa.Column('openid', sa.String(length=64), nullable=False),
    sa.Column('via', sa.String(length=8), nullable=False),
    sa.Column('bound_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tagged', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['household_id'], ['households.id'], name=op.f('fk_household_bindings_household_id_households'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_household_bindings')),
    sa.UniqueConstraint('openid', name=op.f('uq_household_bindings_openid'))
    )
    with op.batch_alter_table('household_bindings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_household_bindings_household_id'), ['household_id'], unique=False)

    with op.batch_alter_table('kb_unanswered', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reply', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('replied_by', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('delivery', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('kb_unanswered', schema=None) as batch_op:
        batch_op.drop_column('closed_at')
        batch_op.drop_column('delivered_at')
        batch_op.drop_column('delivery')
        batch_op.drop_column('replied_by')
        batch_op.drop_column('reply')

    with op.batch_alter_table('household_bindings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_household_bindings_household_id'))

    op.drop_table('household_bindings')
    with op.batch_alter_table('households', schema=None) as batch_op:
        batch_op.drop_index('ix_households_village')
        batch_op.drop_index('ix_households_helper')

    op.drop_table('households')
    op.drop_table('hamlets')
    op.drop_table('group_villages')
    op.drop_table('cadre_villages')
    op.drop_table('villages')
    op.drop_table('group_teams')
    with op.batch_alter_table('group_notices', schema=None) as batch_op:
        batch_op.drop_index('ix_group_notices_pending')

    op.drop_table('group_notices')
    op.drop_table('group_areas')
    op.drop_table('cadre_teams')
    op.drop_table('messaging_groups')
    op.drop_table('cadres')
    op.drop_table('areas')
    op.drop_table('townships')
    op.drop_table('teams')
